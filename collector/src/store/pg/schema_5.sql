-- Version 5: failed console sign-ins, kept where every collector sharing the
-- database counts them alike (a guesser spreading attempts over the collectors
-- gets no more than from one).
CREATE TABLE signin_failures (
    key bytea NOT NULL,
    at_ms bigint NOT NULL
);
CREATE INDEX signin_failures_by_key ON signin_failures (key, at_ms);
CREATE INDEX signin_failures_by_time ON signin_failures (at_ms);
