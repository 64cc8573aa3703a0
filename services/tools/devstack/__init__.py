"""Local Kafka and PostgreSQL processes for tests and `make up` (no Docker needed)."""
