-- Version 2: leases, so that work done once for all collectors sharing the database
-- (retention, schedules, stalled scans, webhook deliveries) runs in one of them.
CREATE TABLE leases (
    name bytea PRIMARY KEY,
    holder bytea NOT NULL,
    until_ms bigint NOT NULL
);
