-- Retention (SPEC 8): entries older than `retention_days` are deleted from
-- the start of each instance's chain; the newest deleted entry's id and hash
-- are kept here, in the same transaction, so the rest still verifies from
-- it.
CREATE TABLE chain_checkpoint (
    instance  TEXT PRIMARY KEY,
    last_id   TEXT NOT NULL,
    last_hash TEXT NOT NULL
);
