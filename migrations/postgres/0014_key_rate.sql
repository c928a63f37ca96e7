-- SQLite's unixepoch() (whole seconds since 1970, UTC) for the statements that count a
-- key's requests per minute, the statement's time like strftime() in 0001.
CREATE FUNCTION unixepoch() RETURNS BIGINT LANGUAGE SQL STABLE AS $$
    SELECT floor(extract(epoch FROM statement_timestamp()))::BIGINT
$$;

-- Mirrors migrations/0014_key_rate.sql: each bot API key's requests per minute window.
CREATE TABLE key_rate (
    key_id       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (key_id, window_start)
);
CREATE INDEX key_rate_window ON key_rate (window_start);
