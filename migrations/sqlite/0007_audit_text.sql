-- The `q` search (text in an entry's path or changes) reads candidates from
-- a trigram index instead of every entry's JSON. Contentless (the text stays
-- in `entry` only), positions not kept (`detail = none`): each candidate is
-- checked against the entry with the same LIKE as before, so the index only
-- has to hold every match, never decide one. Rows deleted by retention are
-- deleted here too (`contentless_delete`).
--
-- Entries are indexed after they are committed, by the recorder when it has
-- nothing to write (store/sqlite/text.rs): `audit_text_upto` holds the
-- newest `seq` indexed, and a search reads the entries past it directly.
-- An existing trail is indexed the same way, in the background.
CREATE VIRTUAL TABLE audit_text USING fts5(
    path, changes, tokenize = 'trigram', content = '', detail = none, contentless_delete = 1
);

CREATE TABLE audit_text_upto (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    upto      INTEGER NOT NULL
);

INSERT INTO audit_text_upto (singleton, upto) VALUES (1, 0);
