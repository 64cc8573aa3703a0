-- Shards: a service's store split into several stores, each a schema of its own with its own
-- positions, hash chain and lock (services/adapters/runtime/shards.py). These tables live in
-- every schema but are used in the service's own schema only (the hub), when it has shards.

-- How many shards the service's store has, recorded once by `mandat migrate`. No row: one
-- store, this schema itself (the layout of every store before shards).
CREATE TABLE IF NOT EXISTS shard_layout (
    singleton  boolean  PRIMARY KEY DEFAULT true CHECK (singleton),
    shards     integer  NOT NULL CHECK (shards BETWEEN 1 AND 1024)
);

-- Ids that must be unique across the shards (an input's event id, a business id), with the
-- shard that holds them: inserted in the transaction that records them there, so a second
-- shard that claims the same id waits for the first to commit, then sees it taken.
CREATE TABLE IF NOT EXISTS claims (
    key    text      PRIMARY KEY,
    shard  smallint  NOT NULL CHECK (shard >= 0)
);

-- The relay of a shard shares the output topics with the relays of the other shards: where
-- on each partition its messages not yet checkpointed can start (see kafka/relay.py).
ALTER TABLE relay_checkpoints ADD COLUMN IF NOT EXISTS floors jsonb NOT NULL DEFAULT '{}';

REVOKE ALL ON shard_layout, claims FROM PUBLIC;
GRANT SELECT ON shard_layout TO mandat_service;
GRANT SELECT, INSERT ON claims TO mandat_service;
