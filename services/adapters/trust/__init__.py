"""Trust in the record from outside the database: Merkle trees over each store, Ed25519
signed anchors of their heads published to Kafka, and the anchorer that runs beside each
service (docs/trust.md)."""
