-- The append-only event store: inputs, decisions, registry facts and rejections.
-- position is allocated by the appender as (last committed position + 1) while it holds the
-- store's advisory lock, so positions become visible strictly in order: a reader following
-- `position > n` can never skip a row that commits later (no gaps, by construction).
CREATE TABLE IF NOT EXISTS events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);
