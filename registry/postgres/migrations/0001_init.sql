-- The whole schema of a store shared by several gateway replicas. Keys and
-- names sort bytewise (COLLATE "C"), as Go sorts strings, whatever the
-- database's locale.

-- Servers: the registration document (header values unexpanded) plus the
-- state the gateway owns. key is the path without slashes, the lookup key.
-- doc is text, not jsonb, so that it comes back byte for byte (tool
-- schemas keep their key order).
CREATE TABLE servers (
    key         TEXT COLLATE "C" PRIMARY KEY,
    path        TEXT NOT NULL,
    server_name TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    doc         TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Gateway API keys: only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    name       TEXT COLLATE "C" PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    groups     TEXT[] NOT NULL DEFAULT '{}',
    admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ
);

-- The last known health of each server (SPEC section 6), written by the one
-- replica that holds the health-check lock and read by the others. A
-- server's row goes with the server.
CREATE TABLE server_health (
    key                  TEXT COLLATE "C" PRIMARY KEY REFERENCES servers(key) ON DELETE CASCADE,
    status               TEXT NOT NULL,
    reason               TEXT NOT NULL DEFAULT '',
    last_checked         TIMESTAMPTZ,
    latency_us           BIGINT NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0
);

-- The access policy (SPEC section 5): one canonical JSON document, replaced
-- whole. The CHECK keeps it a single row.
CREATE TABLE policy (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    doc        TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Values every replica must share, such as the key that seals relayed
-- session ids (generated once by whichever replica comes first).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
