"""Revisions in the services' metrics: a registry fact that revises earlier decisions is
counted by type, in the decisions counter and in its own, from the batch handler's report."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    affiliation,
    convention,
    cotisation,
    envelope,
    key_of,
    nir,
    organisme,
    prestation,
)

from services.adapters.eventstore.memory import MemoryEventStore
from services.adapters.runtime.handler import BatchHandler
from services.adapters.runtime.metrics import ServiceMetrics
from services.adapters.runtime.reviser import Reviser
from services.domain.catalog import BENEFITS, COLLECTION, ServiceDescription
from services.tools.audit.feed import FakeRecord

pytestmark = pytest.mark.unit

N = nir(1)
HISTORY = [
    organisme("OC-M"),
    affiliation(N, "OC-M", "2016-01-01"),
    convention("C1", "OC-M", du="2017-01-01"),
    convention("V1", "OC-M", objet="VERSEMENT_PRESTATIONS_ESPECES", du="2017-01-01"),
    cotisation("Q3", N, debut="2017-07-01"),
    prestation("B1", N, jour="2017-05-02"),
]


def samples(metrics: ServiceMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric `name`, by their labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if s.name == name
    }


async def observed(
    service: ServiceDescription, facts: list[tuple[str, dict[str, Any]]]
) -> ServiceMetrics:
    """Each fact `service` reads decided by the batch handler, one batch each, into the
    service's metrics (the others are not on its topics)."""
    metrics = ServiceMetrics(service.name)
    handler = BatchHandler(
        MemoryEventStore(), lambda view=None: service.new_processor(view=view), service.inputs
    )
    reviser = Reviser(handler)  # the steps of a task a fact opens, counted as the service does
    await handler.catch_up()
    by_type = {t: topic for topic, types in service.inputs.items() for t in types}
    for offset, (kind, payload) in enumerate(f for f in facts if f[0] in by_type):
        record = FakeRecord(by_type[kind], 0, offset, key_of(payload), envelope(kind, payload))
        metrics.observe(await handler.handle([record]), [record])
        while (report := await reviser.step()) is not None:
            metrics.observe(report, ())
    return metrics


@pytest.mark.parametrize(
    ("service", "revision", "decision"),
    [
        (COLLECTION, "EncaissementRevise", "EncaissementDelegue"),
        (BENEFITS, "VersementRevise", "VersementDelegue"),
    ],
)
async def test_a_late_termination_counts_its_revisions_by_type(
    service: ServiceDescription, revision: str, decision: str
) -> None:
    objet = "C1" if service is COLLECTION else "V1"
    late = ("ConventionResiliee", {"convention_id": objet, "effet_au": "2017-03-31"})
    metrics = await observed(service, [*HISTORY, late])
    decisions = samples(metrics, "mandat_decisions_total")
    assert decisions[(("event_type", decision), ("motif", ""))] == 1
    assert decisions[(("event_type", revision), ("motif", ""))] == 1
    assert samples(metrics, "mandat_revisions_total") == {(("event_type", revision),): 1}


async def test_a_fact_that_changes_nothing_counts_no_revision() -> None:
    late = ("ConventionResiliee", {"convention_id": "C1", "effet_au": "2018-12-31"})
    metrics = await observed(COLLECTION, [*HISTORY, late])
    assert samples(metrics, "mandat_revisions_total") == {}
    decisions = samples(metrics, "mandat_decisions_total")
    assert not any(dict(labels)["event_type"] == "EncaissementRevise" for labels in decisions)
