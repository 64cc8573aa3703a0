-- Decision state: what the rules read, by key (services/domain/kernel/state.py): the
-- registry as recorded, each contribution's or benefit's outcome, the inputs waiting for a
-- fact. Not part of the record: written in the same transaction as each append (so it is
-- always the fold of the events up to `decision_state_position`), and rebuildable from the
-- events. The services may change and delete its rows.
CREATE TABLE IF NOT EXISTS decision_state (
    kind     text   NOT NULL,
    key      text   NOT NULL,
    tag      text   COLLATE "C",  -- a secondary key (a parked input: what it waits for)
    ordinal  bigint NOT NULL DEFAULT 0,  -- order among the entries of one tag
    doc      jsonb  NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS decision_state_by_tag
    ON decision_state (kind, tag, ordinal) WHERE tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS decision_state_tagged_by_ordinal
    ON decision_state (kind, ordinal) WHERE tag IS NOT NULL;  -- the oldest parked input

-- The store position the state is the fold of (one row), and the chain hash of the event
-- there: a store cut or rewritten below it no longer has that row, and the state is folded
-- again rather than trusted.
CREATE TABLE IF NOT EXISTS decision_state_position (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position   bigint  NOT NULL CHECK (position >= 0),
    hash       bytea,
    -- the version of the fold that wrote the state: another version folds it again
    version    integer NOT NULL DEFAULT 0
);
INSERT INTO decision_state_position (position) VALUES (0) ON CONFLICT DO NOTHING;

REVOKE ALL ON decision_state, decision_state_position FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON decision_state TO mandat_service;
GRANT SELECT, UPDATE ON decision_state_position TO mandat_service;
