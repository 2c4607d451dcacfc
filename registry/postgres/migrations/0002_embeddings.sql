-- The tool finder's embedding cache (optional hybrid ranking), shared by
-- every replica: one vector per embedded text and model. hash is the hex
-- SHA-256 of the exact text embedded; vec is the vector as little-endian
-- float32s (registry.EncodeVector).
CREATE TABLE embeddings (
    model      TEXT COLLATE "C" NOT NULL,
    hash       TEXT COLLATE "C" NOT NULL,
    vec        BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model, hash)
);
