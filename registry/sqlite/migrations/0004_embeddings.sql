-- The tool finder's embedding cache (optional hybrid ranking): one vector per
-- embedded text and model, so that a restart embeds nothing already seen.
-- hash is the hex SHA-256 of the exact text embedded; vec is the vector as
-- little-endian float32s (registry.EncodeVector).
CREATE TABLE embeddings (
    model      TEXT NOT NULL,
    hash       TEXT NOT NULL,
    vec        BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model, hash)
) WITHOUT ROWID;
