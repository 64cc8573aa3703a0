-- From which position registry facts revise earlier decisions (EncaissementRevise,
-- VersementRevise). Written once, under the store's lock, by the first service (or tool)
-- that keeps the decision state with revisions, at the head it finds + 1: a store recorded
-- before revisions existed is not revised by its replay. From then on no instance without
-- revisions may write to the store (stop the older ones before starting a newer one): a
-- fact it recorded would be revised by replay and not in the record. No row: no revision yet.
CREATE TABLE IF NOT EXISTS revisions_start (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position   bigint  NOT NULL CHECK (position >= 1)
);

REVOKE ALL ON revisions_start FROM PUBLIC;
GRANT SELECT, INSERT ON revisions_start TO mandat_service;
