-- Servers: the registration document (header values unexpanded) plus the
-- state the gateway owns. key is the path without slashes, the lookup key.
CREATE TABLE servers (
    key         TEXT PRIMARY KEY,
    path        TEXT NOT NULL,
    server_name TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Gateway API keys: only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    groups     TEXT NOT NULL DEFAULT '[]',
    admin      INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL DEFAULT ''
);
