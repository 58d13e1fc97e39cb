-- The audit trail. `entry` holds the whole entry as JSON (what the API
-- serves and what the hash covers); the other columns exist to filter.
-- A rowid table: rows are ~1 KiB, too large for WITHOUT ROWID to pay off.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    instance      TEXT NOT NULL,
    timestamp     TEXT NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    status        INTEGER NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    actor         TEXT NOT NULL,
    client_ip     TEXT NOT NULL,
    -- 16 bytes, IPv4 mapped into IPv6: CIDR filters become range scans.
    client_ip_key BLOB NOT NULL,
    configuration TEXT,
    entry         TEXT NOT NULL
);

CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_timestamp ON audit_log (timestamp);
CREATE INDEX audit_log_instance ON audit_log (instance, id);
CREATE INDEX audit_log_client_ip ON audit_log (client_ip_key);
