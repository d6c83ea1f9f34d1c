-- Rampart collector schema, version 1. Keys (IDs, names, projects) are bytea:
-- they compare as bytes, as in the sled backend (scan IDs sort by creation that
-- way), and may hold any bytes, NUL included, which text cannot. Records are their
-- JSON in bytea (jsonb refuses a NUL even escaped).

CREATE TABLE agents (
    id bytea PRIMARY KEY,
    instance_id bytea NOT NULL,
    revoked boolean NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX agents_by_instance ON agents (instance_id) WHERE NOT revoked AND instance_id <> ''::bytea;

CREATE TABLE tokens (
    hash bytea PRIMARY KEY,
    id bytea NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX tokens_by_id ON tokens (id);

-- One row per scan with its counts (in doc); the columns are what lists filter and
-- order by. status: 0 pending, 1 running, 2 completed, 3 failed, 4 cancelled.
-- score_key: the score in hundredths, for the list sorted by score.
CREATE TABLE scans (
    id bytea PRIMARY KEY,
    agent_id bytea NOT NULL,
    project bytea,
    status smallint NOT NULL,
    blocking boolean NOT NULL,
    score_key integer NOT NULL,
    score double precision,
    created_at_ms bigint NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX scans_by_agent ON scans (agent_id, id);
CREATE INDEX scans_by_status ON scans (status, id);
CREATE INDEX scans_by_project ON scans (project, id);
CREATE INDEX scans_by_project_status ON scans (project, status, id);
CREATE INDEX scans_blocking ON scans (id) WHERE blocking;
CREATE INDEX scans_by_score ON scans (score_key, id) WHERE status = 2;
CREATE INDEX scans_completed_by_agent ON scans (agent_id, id) WHERE status = 2;

-- The newest scan of each agent, and its newest completed one with its score.
CREATE TABLE latest_scans (
    agent_id bytea PRIMARY KEY,
    scan_id bytea NOT NULL,
    blocking boolean NOT NULL
);
CREATE TABLE latest_completed (
    agent_id bytea PRIMARY KEY,
    scan_id bytea NOT NULL,
    score double precision NOT NULL
);

-- Counters kept in the writing transaction, keyed as the sled backend keys them
-- (store::sled_index): scans per status, blocking, per project and agent; completed
-- scans per score and per day; audit entries per action and actor.
CREATE TABLE counters (
    key bytea PRIMARY KEY,
    n bigint NOT NULL
);

-- Results: one zstd-compressed JSON chunk per acknowledged batch; a read replays a
-- scan's chunks in order, the newest status of a rule winning.
CREATE TABLE result_chunks (
    seq bigserial PRIMARY KEY,
    scan_id bytea NOT NULL,
    chunk bytea NOT NULL
);
CREATE INDEX result_chunks_by_scan ON result_chunks (scan_id, seq);

CREATE TABLE users (
    token_hash bytea PRIMARY KEY,
    name bytea NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX users_by_name ON users (name, token_hash);

CREATE TABLE sessions (
    id_hash bytea PRIMARY KEY,
    doc bytea NOT NULL
);

-- The hash-chained audit log: appends take the advisory lock of the chain.
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    action bytea NOT NULL,
    actor bytea NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX audit_by_action ON audit (action, seq);
CREATE INDEX audit_by_actor ON audit (actor, seq);

CREATE TABLE deliveries (
    id bytea PRIMARY KEY,
    pending boolean NOT NULL,
    doc bytea NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries (id) WHERE pending;

CREATE TABLE attempts (
    at_ms bigint NOT NULL,
    delivery_id bytea NOT NULL,
    attempt integer NOT NULL,
    doc bytea NOT NULL,
    PRIMARY KEY (at_ms, delivery_id, attempt)
);

CREATE TABLE meta (
    key bytea PRIMARY KEY,
    value bytea NOT NULL
);
