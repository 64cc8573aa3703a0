-- The services' role (cluster-wide, shared by every service schema). Services connect with
-- the configured user and switch to this role for the whole session (`SET ROLE`), so what
-- they may do is what is granted here.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mandat_service') THEN
        CREATE ROLE mandat_service NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- created concurrently by another schema's migration
END;
$$;
