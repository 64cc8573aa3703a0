"""Prometheus metrics of a service (one registry per service, so two can share a process)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from contracts.topics import REVISIONS
from services.adapters.runtime.handler import BatchReport, Record

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """Inputs, decisions, rejections, parked inputs, relay lag and latencies."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        self.inputs = counter(
            "mandat_inputs_total", "Inputs recorded, by event type", "event_type"
        ).labels
        self.decisions = counter(
            "mandat_decisions_total",
            "Decisions recorded, revisions included (EncaissementRevise, VersementRevise: "
            "their motif label is empty, the motif is in their before and after outcomes)",
            "event_type",
            "motif",
        )
        self.revisions = counter(
            "mandat_revisions_total",
            "Earlier decisions revised by a registry fact recorded late, by revision type "
            "(also counted in mandat_decisions_total)",
            "event_type",
        ).labels
        self.rejections = counter(
            "mandat_rejections_total", "Messages rejected, by field", "reason"
        )
        self.duplicates = counter("mandat_duplicates_total", "Inputs already recorded")
        self.retries = counter(
            "mandat_batch_retries_total", "Batches retried after a transient failure"
        )
        self.parked = gauge("mandat_parked_inputs", "Inputs waiting for a fact")
        self.revision_tasks = gauge(
            "mandat_revision_tasks_open", "Registry facts whose revisions are still in steps"
        )
        self.relay_lag = gauge(
            "mandat_relay_lag_events", "Events committed to the store, not yet published"
        )
        self.store_head = gauge("mandat_store_head_position", "Last committed position")
        self.stalled = gauge(
            "mandat_stalled_seconds",
            "Seconds a component (consumer, relay) has made no progress with work in hand",
            "component",
        )
        self.ready = gauge("mandat_ready", "1 when the service is ready (what /ready answers)")
        self.consumer_lag = gauge(
            "mandat_consumer_lag_messages",
            "Records of an input partition the service's group has not committed yet "
            "(read from the broker, services/adapters/runtime/lag.py)",
            "topic",
            "partition",
        )
        self.consumer_lag_checked = gauge(
            "mandat_consumer_lag_checked_timestamp_seconds",
            "When the consumer lag was last measured (0: not yet)",
        )
        self.parked_oldest = gauge(
            "mandat_parked_oldest_seconds",
            "Age of the oldest parked input, from its store commit (0 when none is parked)",
        )
        self.chain_check_failed = gauge(
            "mandat_chain_check_failed",
            "1 when a check of the store's hash chain failed: `rolling` re-verifies every "
            "row's hash in the background, `anchorer` refuses to sign a store that "
            "contradicts its last anchor (services/adapters/trust/chainwatch.py, anchorer.py)",
            "check",
        )
        self.chain_checked = gauge(
            "mandat_chain_checked_position",
            "Last position the rolling chain check verified in its current pass",
        )
        self.chain_passes = counter(
            "mandat_chain_check_passes",
            "Complete passes of the rolling chain check over the store, found intact",
        )
        self.append_seconds = histogram(
            "mandat_append_seconds", "Store transaction of one batch (decide + append)"
        )
        self.decision_seconds = histogram(
            "mandat_decision_latency_seconds",
            "From the input's Kafka timestamp to its decision's store commit",
        )
        self.info = gauge("mandat_service_info", "Service identity", "service")
        self.info.labels(service=service).set(1)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str) -> Histogram:
        """A latency, in the buckets every latency of the services is measured in."""
        return Histogram(name, documentation, buckets=_LATENCY_BUCKETS, registry=self.registry)

    def observe(self, report: BatchReport, records: Sequence[Record]) -> None:
        for event_type, n in report.inputs.items():
            self.inputs(event_type).inc(n)
        for (event_type, motif), n in report.decisions.items():
            self.decisions.labels(event_type, motif).inc(n)
            if event_type in REVISIONS:
                self.revisions(event_type).inc(n)
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
