-- The kept statistics by day as well (store/stats.rs): a long range sums
-- its whole days here, the hours at its ends from audit_stats, and only its
-- partial hours from audit_log.
CREATE TABLE audit_stats_daily (
    dimension TEXT NOT NULL,
    day       INTEGER NOT NULL,
    value     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (dimension, day, value)
) WITHOUT ROWID;

INSERT INTO audit_stats_daily (dimension, day, value, n)
SELECT dimension, hour / 24, value, SUM(n) FROM audit_stats GROUP BY 1, 2, 3;
