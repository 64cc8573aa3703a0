"""Audit of the record: replay of every decision, the hash chain, a subject's trail,
republishing to the audit topic, and the projections rebuilt from position 0.

Everything here reads the store, never Kafka, and never writes the record.
"""
