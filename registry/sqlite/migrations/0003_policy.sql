-- The access policy (SPEC section 5): one canonical JSON document, replaced
-- whole. The CHECK keeps it a single row.
CREATE TABLE policy (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    doc        TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
