-- The `q` search's index merges its segments sixteen at a time instead of
-- four: a third less work for each entry indexed (an index step of 256
-- entries is the recorder's idle work under load), for a few more segments
-- a search reads its trigrams' lists from. Kept in the index's own
-- configuration (`audit_text_config`); merges already made stay as they are.
INSERT INTO audit_text (audit_text, rank) VALUES ('automerge', 16);
