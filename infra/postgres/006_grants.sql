-- SELECT and INSERT only on the record; UPDATE only on the relay's checkpoints.
-- current_schema() is the service's schema (the runner sets search_path).
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO mandat_service', current_schema());
END;
$$;
REVOKE ALL ON events, relay_checkpoints, schema_migrations FROM PUBLIC;
GRANT SELECT, INSERT ON events TO mandat_service;
GRANT SELECT, INSERT, UPDATE ON relay_checkpoints TO mandat_service;
GRANT SELECT ON schema_migrations TO mandat_service;
