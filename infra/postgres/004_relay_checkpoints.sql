-- How far each relay has published. Not part of the record (it can be rebuilt from the
-- output topics), so it is the one table the services may UPDATE.
CREATE TABLE IF NOT EXISTS relay_checkpoints (
    relay       text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
