-- The namespace of the decision ids a shard mints (services/adapters/runtime/shards.py):
-- a fact about organisms is recorded in every shard under one id, and the decisions it
-- causes there (its revisions, the parked inputs it unblocks) are numbered per shard; in
-- its own namespace, from `position` on, a shard's ids cannot be another shard's. Written
-- once, by the owner, when the shard is made. No row: the service's own namespace (a
-- store in one piece).
CREATE TABLE IF NOT EXISTS id_space (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    space      text    NOT NULL CHECK (space ~ '^[a-z0-9]{1,16}$'),
    position   bigint  NOT NULL CHECK (position >= 1)
);

REVOKE ALL ON id_space FROM PUBLIC;
GRANT SELECT ON id_space TO mandat_service;
