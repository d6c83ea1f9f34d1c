-- Version 3: scans and their results partitioned by month. A scan's ID begins with
-- its creation time (`sc-<13-digit ms>-…`), so a month is a range of IDs; retention
-- drops a month of results at once instead of deleting rows. The rows land in the
-- DEFAULT partitions here; the collector then moves each month into a partition of
-- its own (partitions.rs), and keeps the current and the next month ready.

ALTER TABLE scans RENAME TO scans_v2;
ALTER INDEX scans_pkey RENAME TO scans_v2_pkey;
CREATE TABLE scans (
    id bytea NOT NULL,
    agent_id bytea NOT NULL,
    project bytea,
    status smallint NOT NULL,
    blocking boolean NOT NULL,
    score_key integer NOT NULL,
    score double precision,
    created_at_ms bigint NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE TABLE scans_other PARTITION OF scans DEFAULT;
INSERT INTO scans SELECT id, agent_id, project, status, blocking, score_key, score, created_at_ms, doc FROM scans_v2;
DROP TABLE scans_v2;
CREATE INDEX scans_by_agent ON scans (agent_id, id);
CREATE INDEX scans_by_status ON scans (status, id);
CREATE INDEX scans_by_project ON scans (project, id);
CREATE INDEX scans_by_project_status ON scans (project, status, id);
CREATE INDEX scans_blocking ON scans (id) WHERE blocking;
CREATE INDEX scans_by_score ON scans (score_key, id) WHERE status = 2;
CREATE INDEX scans_completed_by_agent ON scans (agent_id, id) WHERE status = 2;

-- The chunks keep their order (one sequence, as before), per scan.
ALTER TABLE result_chunks RENAME TO result_chunks_v2;
ALTER INDEX result_chunks_pkey RENAME TO result_chunks_v2_pkey;
ALTER SEQUENCE result_chunks_seq_seq OWNED BY NONE;
CREATE TABLE result_chunks (
    scan_id bytea NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('result_chunks_seq_seq'),
    chunk bytea NOT NULL,
    PRIMARY KEY (scan_id, seq)
) PARTITION BY RANGE (scan_id);
CREATE TABLE result_chunks_other PARTITION OF result_chunks DEFAULT;
INSERT INTO result_chunks (scan_id, seq, chunk) SELECT scan_id, seq, chunk FROM result_chunks_v2;
DROP TABLE result_chunks_v2;
ALTER SEQUENCE result_chunks_seq_seq OWNED BY result_chunks.seq;
