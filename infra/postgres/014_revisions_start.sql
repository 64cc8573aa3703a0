-- From which position registry facts revise earlier decisions (EncaissementRevise,
-- VersementRevise). Written once, under the store's lock, by the first service (or tool)
-- that keeps the decision state with revisions, at the head it finds + 1: a store recorded
-- before revisions existed is not revised by its replay, nor are facts an older instance
-- recorded after this migration ran (during a rolling upgrade). No row: no revision yet.
CREATE TABLE IF NOT EXISTS revisions_start (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position   bigint  NOT NULL CHECK (position >= 1)
);

REVOKE ALL ON revisions_start FROM PUBLIC;
GRANT SELECT, INSERT ON revisions_start TO mandat_service;
