-- A span of a pair index (the people ever affiliated to one organism) read in key order,
-- a step of a revision task at a time (services/domain/kernel/tasks.py): one index range
-- per step, whatever the organism's population.
CREATE INDEX IF NOT EXISTS decision_state_by_tag_and_key
    ON decision_state (kind, tag, key COLLATE "C") WHERE tag IS NOT NULL;
