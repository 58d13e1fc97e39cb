-- Statistics kept as entries are written (store/stats.rs): entries by
-- dimension (action, resource_type, actor, outcome), value and hour of
-- their timestamp, moved in each batch's transaction and by retention.
-- GET /api/v1/stats sums whole hours from here and counts only a range's
-- partial hours from audit_log, instead of reading every entry.
CREATE TABLE audit_stats (
    dimension TEXT NOT NULL,
    hour      INTEGER NOT NULL,
    value     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (dimension, hour, value)
) WITHOUT ROWID;

INSERT INTO audit_stats (dimension, hour, value, n)
SELECT 'action', CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER) / 3600, json_extract(entry, '$.action'), COUNT(*)
FROM audit_log GROUP BY 2, 3;
INSERT INTO audit_stats (dimension, hour, value, n)
SELECT 'resource_type', CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER) / 3600, resource_type, COUNT(*)
FROM audit_log GROUP BY 2, 3;
INSERT INTO audit_stats (dimension, hour, value, n)
SELECT 'actor', CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER) / 3600, actor, COUNT(*)
FROM audit_log GROUP BY 2, 3;
INSERT INTO audit_stats (dimension, hour, value, n)
SELECT 'outcome', CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER) / 3600, json_extract(entry, '$.outcome'), COUNT(*)
FROM audit_log GROUP BY 2, 3;
