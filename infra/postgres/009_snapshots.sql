-- Snapshots of a service's in-memory view (its fold of the store), so a restart reads only
-- the events after the latest one instead of the whole store. Derived data: a snapshot can
-- always be dropped and rebuilt from the events. Insert-only, like the record.
CREATE TABLE IF NOT EXISTS snapshots (
    kind        text        NOT NULL,
    position    bigint      NOT NULL CHECK (position > 0),
    format      text        NOT NULL,
    data        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, position)
);
REVOKE ALL ON snapshots FROM PUBLIC;
GRANT SELECT, INSERT ON snapshots TO mandat_service;
