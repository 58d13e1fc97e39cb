-- Legal holds (issue 15): while a hold is active (not released), the
-- entries it covers are neither erased nor deleted by retention. A hold
-- covers the entries of one actor, one resource or one client address (or
-- CIDR), optionally within a time range (`since`/`until`, the entries'
-- timestamps). Creating and releasing a hold are entries in the trail too.
CREATE TABLE legal_hold (
    id            INTEGER PRIMARY KEY,
    actor         TEXT,
    resource_type TEXT,
    resource_id   TEXT,
    client_ip     TEXT,
    since         TEXT,
    until         TEXT,
    reason        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    released_at   TEXT,
    released_by   TEXT
);
