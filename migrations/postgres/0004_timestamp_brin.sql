-- A range of `timestamp` without a B-tree's cost to every insert: a BRIN
-- index keeps each 16 pages' smallest and largest timestamp (entries are
-- appended in about the order they were answered), so a time range reads
-- only the pages that can hold it. `since` alone is served by the primary
-- key (its id floor, store/filter.rs); this serves what the floor cannot:
-- a range far in the past (the statistics' partial hours at a range's
-- ends, a day a week ago). New pages are summarised as each range fills.
CREATE INDEX audit_log_timestamp_brin ON audit_log USING brin (timestamp)
    WITH (pages_per_range = 16, autosummarize = on);
