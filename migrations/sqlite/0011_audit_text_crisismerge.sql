-- The `q` search's index never merges a whole level of segments at once.
-- With `crisismerge` at its default, 16, the same as `automerge` (0008), a
-- level that reached 16 segments was merged whole, in the one index step
-- that found it so: at a million entries that is a merge of most of the
-- index inside one short write transaction, during which the recorder's
-- batches wait (the audited path's cost tripled for seconds after a start on
-- a large trail). At 64, the incremental merges `automerge` spreads over the
-- steps (work in proportion to what each step writes) keep every level below
-- it, so a step costs about the same whatever the index's size.
INSERT INTO audit_text (audit_text, rank) VALUES ('crisismerge', 64);
