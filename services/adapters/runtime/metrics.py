"""Prometheus metrics of a service (one registry per service, so two can share a process)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.adapters.runtime.handler import BatchReport, Record

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """Inputs, decisions, rejections, parked inputs, relay lag and latencies."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service}
        r = self.registry
        self.inputs = Counter(
            "mandat_inputs_total", "Inputs recorded, by event type", ["event_type"], registry=r
        ).labels
        self.decisions = Counter(
            "mandat_decisions_total", "Decisions recorded", ["event_type", "motif"], registry=r
        )
        self.rejections = Counter(
            "mandat_rejections_total", "Messages rejected, by field", ["reason"], registry=r
        )
        self.duplicates = Counter("mandat_duplicates_total", "Inputs already recorded", registry=r)
        self.retries = Counter(
            "mandat_batch_retries_total", "Batches retried after a transient failure", registry=r
        )
        self.parked = Gauge("mandat_parked_inputs", "Inputs waiting for a fact", registry=r)
        self.relay_lag = Gauge(
            "mandat_relay_lag_events",
            "Events committed to the store, not yet published",
            registry=r,
        )
        self.store_head = Gauge("mandat_store_head_position", "Last committed position", registry=r)
        self.stalled = Gauge(
            "mandat_stalled_seconds",
            "Seconds a component (consumer, relay) has made no progress with work in hand",
            ["component"],
            registry=r,
        )
        self.ready = Gauge(
            "mandat_ready", "1 when the service is ready (what /ready answers)", registry=r
        )
        self.consumer_lag = Gauge(
            "mandat_consumer_lag_messages",
            "Records of an input partition the service's group has not committed yet "
            "(read from the broker, services/adapters/runtime/lag.py)",
            ["topic", "partition"],
            registry=r,
        )
        self.consumer_lag_checked = Gauge(
            "mandat_consumer_lag_checked_timestamp_seconds",
            "When the consumer lag was last measured (0: not yet)",
            registry=r,
        )
        self.parked_oldest = Gauge(
            "mandat_parked_oldest_seconds",
            "Age of the oldest parked input, from its store commit (0 when none is parked)",
            registry=r,
        )
        self.chain_check_failed = Gauge(
            "mandat_chain_check_failed",
            "1 when a check of the store's hash chain failed: `rolling` re-verifies every "
            "row's hash in the background, `anchorer` refuses to sign a store that "
            "contradicts its last anchor (services/adapters/trust/chainwatch.py, anchorer.py)",
            ["check"],
            registry=r,
        )
        self.chain_checked = Gauge(
            "mandat_chain_checked_position",
            "Last position the rolling chain check verified in its current pass",
            registry=r,
        )
        self.chain_passes = Counter(
            "mandat_chain_check_passes",
            "Complete passes of the rolling chain check over the store, found intact",
            registry=r,
        )
        self.append_seconds = Histogram(
            "mandat_append_seconds",
            "Store transaction of one batch (decide + append)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "mandat_decision_latency_seconds",
            "From the input's Kafka timestamp to its decision's store commit",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.info = Gauge("mandat_service_info", "Service identity", list(labels), registry=r)
        self.info.labels(**labels).set(1)

    def observe(self, report: BatchReport, records: Sequence[Record]) -> None:
        for event_type, n in report.inputs.items():
            self.inputs(event_type).inc(n)
        for (event_type, motif), n in report.decisions.items():
            self.decisions.labels(event_type, motif).inc(n)
        for reason, n in report.rejected.items():
            self.rejections.labels(reason).inc(n)
        self.duplicates.inc(report.duplicates)
        self.retries.inc(report.attempts - 1)
        self.append_seconds.observe(report.seconds)
        now_ms = time.time() * 1000
        for record in records:
            self.decision_seconds.observe(max(0.0, now_ms - record.timestamp) / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
