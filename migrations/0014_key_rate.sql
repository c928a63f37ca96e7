-- Requests of each bot API key per minute, counted in the database so that
-- `http.key_requests_per_minute` holds across every node (`[database] several_nodes`;
-- one node counts in memory). A window is the minute that starts at `window_start`, in
-- unix seconds of the database's clock, so the nodes' clocks need not agree. Windows
-- older than the last two are deleted as requests come.
CREATE TABLE key_rate (
    key_id       TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (key_id, window_start)
);
CREATE INDEX key_rate_window ON key_rate (window_start);
