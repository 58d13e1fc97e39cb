-- Entries sealed more than an hour after they were answered (a spool
-- replayed after a long outage, a clock stepped back): the only entries
-- whose id lies past an hour after their `timestamp`. A page with `until`
-- walks the ids down from an hour past it (store/filter.rs, `id_ceiling`)
-- and reads these besides, instead of walking down from the newest entry.
-- The writers add them (store/postgres/mod.rs); retention deletes them with
-- their entries. The backfill compares each id's time (its first ten
-- characters, Crockford base 32 milliseconds) with its timestamp.
CREATE TABLE audit_late (
    id        TEXT COLLATE "C" PRIMARY KEY,
    timestamp TEXT COLLATE "C" NOT NULL
);

CREATE INDEX audit_late_timestamp ON audit_late (timestamp);

INSERT INTO audit_late (id, timestamp)
SELECT id, timestamp FROM audit_log
WHERE (SELECT sum((strpos('0123456789ABCDEFGHJKMNPQRSTVWXYZ', substr(id, i, 1)) - 1)::bigint << (5 * (10 - i)))
       FROM generate_series(1, 10) AS i)
    > floor(extract(epoch FROM timestamp::timestamptz) * 1000)::bigint + 3600000;

-- A time range is now read in id order between the floor and the ceiling,
-- for pages and counts alike (store/postgres/mod.rs): the BRIN index on
-- `timestamp` (0004) serves no query any more, and would cost every insert.
DROP INDEX audit_log_timestamp_brin;
