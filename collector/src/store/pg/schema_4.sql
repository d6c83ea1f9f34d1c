-- Version 4: which collector holds each agent's stream, and when each collector was
-- last alive, so that every collector can say whether an agent is connected.
CREATE TABLE streams (
    agent_id bytea PRIMARY KEY,
    instance bytea NOT NULL,
    since_ms bigint NOT NULL
);
CREATE TABLE instances (
    instance bytea PRIMARY KEY,
    seen_ms bigint NOT NULL
);
