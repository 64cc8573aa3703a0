-- Where each store transaction's trace is (services/adapters/runtime/tracing.py): the W3C traceparent
-- of the span that appended positions first_position..last_position, so the relay's publish
-- span can link to it. Operational metadata, not part of the record: outside the events
-- table and its hash chain, never replayed, written only while tracing is on.
CREATE TABLE IF NOT EXISTS trace_contexts (
    last_position   bigint  PRIMARY KEY CHECK (last_position > 0),
    first_position  bigint  NOT NULL CHECK (first_position > 0 AND first_position <= last_position),
    traceparent     text    NOT NULL CHECK (length(traceparent) = 55)
);
REVOKE ALL ON trace_contexts FROM PUBLIC;
GRANT SELECT, INSERT ON trace_contexts TO mandat_service;
