-- The columns the resource and actor indexes are built on compare
-- bytewise ("C"), like `id` and `timestamp`: a filter on them is an
-- equality, which any deterministic collation answers the same way, and a
-- locale's collation costs every insert a strcoll per index comparison
-- (C.UTF-8 is not "C" to PostgreSQL). The indexes are rebuilt.
ALTER TABLE audit_log
    ALTER COLUMN resource_type TYPE TEXT COLLATE "C",
    ALTER COLUMN resource_id TYPE TEXT COLLATE "C",
    ALTER COLUMN actor TYPE TEXT COLLATE "C";
