-- A store split into shards by `mandat store split` (services/tools/audit/split.py): the
-- events of this schema are kept as they are (append-only: the archive the shards were
-- copied from), and this row says up to which of them (position and chain hash), into how
-- many shards, and when. No row: this schema's events were never split.
CREATE TABLE IF NOT EXISTS store_split (
    singleton      boolean      PRIMARY KEY DEFAULT true CHECK (singleton),
    head_position  bigint       NOT NULL CHECK (head_position >= 0),
    head_hash      bytea,
    shards         integer      NOT NULL CHECK (shards BETWEEN 2 AND 1024),
    split_at       timestamptz  NOT NULL DEFAULT now()
);

REVOKE ALL ON store_split FROM PUBLIC;
GRANT SELECT ON store_split TO mandat_service;

-- In a shard of a split store: the decisions whose id is not the one their rank in their
-- input's outcome in the shard gives (`decision_id(input, rank)`), because the store they
-- were copied from ranked them among other shards' people. Replay names them from here.
CREATE TABLE IF NOT EXISTS split_ids (
    trigger   uuid     NOT NULL,
    rank      integer  NOT NULL CHECK (rank >= 1),
    event_id  uuid     NOT NULL,
    PRIMARY KEY (trigger, rank)
);

REVOKE ALL ON split_ids FROM PUBLIC;
GRANT SELECT ON split_ids TO mandat_service;
