-- Recorder throughput (issue 3): every column and index is paid for on each
-- insert. Kept as columns: what the indexes serve (resource history, actor,
-- client address, time, id order). Everything else is filtered through
-- json_extract on `entry`, which is also the only copy the hash covers.
-- The newest hash of each instance's chain moves to `chain_head`, updated in
-- the same transaction as each batch, so no index on `instance` is needed.

CREATE TABLE chain_head (
    instance  TEXT PRIMARY KEY,
    last_id   TEXT NOT NULL,
    last_hash TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO chain_head (instance, last_id, last_hash)
SELECT a.instance, a.id, json_extract(a.entry, '$.hash')
FROM audit_log a
WHERE a.id = (SELECT max(b.id) FROM audit_log b WHERE b.instance = a.instance);

CREATE TABLE audit_log_narrow (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    timestamp     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    actor         TEXT NOT NULL,
    -- 16 bytes, IPv4 mapped into IPv6: CIDR filters become range scans.
    client_ip_key BLOB NOT NULL,
    entry         TEXT NOT NULL
);

INSERT INTO audit_log_narrow (seq, id, timestamp, resource_type, resource_id, actor, client_ip_key, entry)
SELECT seq, id, timestamp, resource_type, resource_id, actor, client_ip_key, entry FROM audit_log;

DROP TABLE audit_log;
ALTER TABLE audit_log_narrow RENAME TO audit_log;

CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_timestamp ON audit_log (timestamp);
CREATE INDEX audit_log_client_ip ON audit_log (client_ip_key);
