-- Forwarding (SPEC 12): how far each sink has delivered each instance's
-- chain. One row per (sink, instance), the newest id of that instance the
-- sink has delivered; it reads on from there (an instance's ids grow in the
-- order its entries are committed, so nothing committed later is older).
CREATE TABLE sink_cursor (
    sink     TEXT NOT NULL,
    instance TEXT NOT NULL,
    last_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (sink, instance)
);
