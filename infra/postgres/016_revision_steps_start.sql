-- From which position a registry fact about an organism revises its people in steps (a
-- revision task: services/domain/kernel/tasks.py) rather than in its own transaction.
-- Written once, with `revisions_start`, by the first service that works in steps, at the
-- head it finds + 1: a store recorded by the version before keeps its replay. No row: the
-- store was never written in steps.
CREATE TABLE IF NOT EXISTS revision_steps_start (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position   bigint  NOT NULL CHECK (position >= 1)
);

REVOKE ALL ON revision_steps_start FROM PUBLIC;
GRANT SELECT, INSERT ON revision_steps_start TO mandat_service;
