-- Audit configurations (SPEC 5). `body` is the configuration as JSON; the
-- columns beside it are what the database itself must enforce or order by.
-- `configuration_version` moves with every change, in the same transaction,
-- so each instance notices a change with one cheap read.
CREATE TABLE audit_configuration (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    source     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE configuration_version (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version   INTEGER NOT NULL
);

INSERT INTO configuration_version (singleton, version) VALUES (1, 0);
