-- The `q` search's trigram index (store/postgres/text.rs), filled after
-- entries are committed rather than by their insert: a GIN index on the
-- trail itself costs every insert about four times the rest of its work.
-- pg_trgm is a trusted extension: a role that may create objects in this
-- database may install it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Each indexed entry's searched text: its path and its changes, as `q`
-- reads them, one line each.
CREATE TABLE audit_text (
    id   TEXT COLLATE "C" PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE INDEX audit_text_trigrams ON audit_text USING gin (text gin_trgm_ops);

-- How far each instance's entries are indexed: every entry of `instance`
-- up to `upto` (its chain commits in id order) and none past it.
CREATE TABLE audit_text_upto (
    instance TEXT PRIMARY KEY,
    upto     TEXT COLLATE "C" NOT NULL
);
