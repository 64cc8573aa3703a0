-- Ledger of applied migrations (one row per file). Applied by services.eventstore.migrations,
-- which sets search_path to the service's schema before running each file.
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
