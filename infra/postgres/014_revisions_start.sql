-- From which position registry facts revise earlier decisions (EncaissementRevise,
-- VersementRevise). A store recorded before revisions existed is not revised by its replay:
-- what was decided then stays as it was recorded; a new store revises from its first fact.
CREATE TABLE IF NOT EXISTS revisions_start (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position   bigint  NOT NULL CHECK (position >= 1)
);
INSERT INTO revisions_start (position)
SELECT coalesce(max(position), 0) + 1 FROM events
ON CONFLICT DO NOTHING;

REVOKE ALL ON revisions_start FROM PUBLIC;
GRANT SELECT ON revisions_start TO mandat_service;
