-- The last known health of each server (SPEC section 6), written by the
-- background checker when a state changes, so a restarted gateway shows it
-- before its first sweep ends. A server's row goes with the server.
CREATE TABLE server_health (
    key                  TEXT PRIMARY KEY REFERENCES servers(key) ON DELETE CASCADE,
    status               TEXT NOT NULL,
    reason               TEXT NOT NULL DEFAULT '',
    last_checked         TEXT NOT NULL DEFAULT '',
    latency_us           INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0
);
