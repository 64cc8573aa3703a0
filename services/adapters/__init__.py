"""The domain connected to the world: the PostgreSQL event store (every SQL statement on its
tables), Kafka (relay, topics, outbound messages, AsyncAPI), the service runtime (FastStream
subscriber, batch handler, HTTP status, metrics, settings) and the trust anchors."""
