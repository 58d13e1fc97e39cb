-- Statistics kept as entries are written, as on SQLite (store/stats.rs):
-- entries by dimension (action, resource_type, actor, outcome), value and
-- hour (and day) of their timestamp, moved in each batch's transaction and
-- by retention. Kept per instance: each instance's writer moves only its
-- own rows, so instances sharing the database never wait on each other's
-- counts; a range's answer sums them.
CREATE TABLE audit_stats (
    dimension TEXT NOT NULL,
    hour      BIGINT NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    instance  TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (dimension, hour, value, instance)
);

CREATE TABLE audit_stats_daily (
    dimension TEXT NOT NULL,
    day       BIGINT NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    instance  TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (dimension, day, value, instance)
);

INSERT INTO audit_stats (dimension, hour, value, instance, n)
SELECT d.dimension, floor(extract(epoch FROM a.timestamp::timestamptz) / 3600)::bigint, d.value, a.instance, COUNT(*)
FROM audit_log a
CROSS JOIN LATERAL (VALUES ('action', a.action), ('resource_type', a.resource_type),
                           ('actor', a.actor), ('outcome', a.outcome)) AS d (dimension, value)
GROUP BY 1, 2, 3, 4;

INSERT INTO audit_stats_daily (dimension, day, value, instance, n)
SELECT dimension, floor(hour / 24.0)::bigint, value, instance, SUM(n) FROM audit_stats GROUP BY 1, 2, 3, 4;
