-- Views are no longer saved: a snapshot was a pickle, which can run code when loaded, and
-- nothing that can run code is read from storage. A service folds its store at start.
DROP TABLE IF EXISTS snapshots;
