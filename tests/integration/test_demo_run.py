"""`mandat run` end to end: a small scenario through both services in-process, on a real
Kafka broker and a real PostgreSQL, decided completely and summarised with the right figures."""

from __future__ import annotations

from typing import Any

import pytest

from services.adapters.runtime.settings import ServiceSettings
from services.tools.demo.run import Summary, play
from services.tools.demo.scenario import BENEFITS, COLLECTION, Scenario, generate

pytestmark = pytest.mark.integration

SIZE, SEED = 150, 11


def _stable(summary: Summary) -> dict[str, Any]:
    figures = summary.to_json()
    for varying in ("elapsed_s", "messages_per_s", "run"):
        figures.pop(varying)
    return figures


def _year(day: str) -> int:
    return int(day[:4])


def _check_figures(summary: Summary, scenario: Scenario) -> None:
    assert summary.complete, summary.missing[:5]
    assert not summary.unexpected, summary.unexpected[:5]
    expected = scenario.expected()
    for service in (COLLECTION, BENEFITS):
        assert summary.decided[service] == expected[service]["decided"]
        assert sum(summary.rejected[service].values()) == expected[service]["rejected"]
        assert sum(summary.parked[service].values()) == expected[service]["parked"]
        assert summary.still_parked.get(service, 0) == 0

    dues = scenario.payloads("CotisationDue")
    by_year = {
        y: [d for d in dues if _year(d["periode"]["debut"]) == y] for y in (2016, 2017, 2018)
    }
    c = summary.count
    assert c(COLLECTION, "EncaissementNonDelegue", "RECOUVREMENT_URSSAF") == len(by_year[2018])
    assert c(COLLECTION, "EncaissementNonDelegue", "PERIODE_ANTERIEURE_A_2017") == len(
        by_year[2016]
    )
    assert c(COLLECTION, "EncaissementNonDelegue", "CATEGORIE_HORS_CHAMP") == sum(
        1 for d in by_year[2017] if d["categorie"] != "PROFESSION_LIBERALE"
    )
    contribution_decisions = sum(
        n
        for (t, _m), (n, _v) in summary.decisions[COLLECTION].items()
        if t in ("EncaissementDelegue", "EncaissementNonDelegue")
    )
    assert contribution_decisions == len(dues)
    assert c(COLLECTION, "PaiementEncaissePourCompte") + c(
        COLLECTION, "PaiementNonImpute", "NON_DELEGUE"
    ) == len(scenario.payloads("PaiementRecu"))
    # organisms of social security are never entrusted with collection (alinéa 1)
    assert not any(o.startswith("OC-OSS") for o in summary.delegated)
    assert c(COLLECTION, "EncaissementNonDelegue", "ORGANISME_INELIGIBLE") > 0

    benefits = scenario.payloads("PrestationEspecesDue")
    assert c(BENEFITS, "PrestationNonTraitee", "PERIODE_ANTERIEURE_A_2017") == sum(
        1 for b in benefits if _year(b["fait_generateur_le"]) < 2017
    )
    paid = sum(b["montant_cents"] for b in benefits if _year(b["fait_generateur_le"]) >= 2017)
    on_behalf = sum(v for _n, v in summary.versements_delegues.values())
    directly = sum(v for _n, v in summary.versements_directs.values())
    assert on_behalf + directly == paid
    assert on_behalf > 0 and directly > 0
    # phase 4: registry facts recorded late revise decisions of both services; the
    # revisions settle no input (every input is decided once, above) and are counted apart
    for service, revision in ((COLLECTION, "EncaissementRevise"), (BENEFITS, "VersementRevise")):
        assert summary.revisions[service][0] >= 1
        assert c(service, revision) == summary.revisions[service][0]
    assert sum(summary.moves.values()) == sum(n for n, _v in summary.revisions.values())
    held = sum(v for _n, v in summary.reversements.values())
    assert held == sum(
        v
        for (t, _m), (_n, v) in summary.decisions[COLLECTION].items()
        if t == "PaiementEncaissePourCompte"
    )


async def test_a_small_scenario_is_decided_completely_and_the_same_seed_sums_up_the_same(
    settings: ServiceSettings,
) -> None:
    first = await play(
        SIZE, SEED, settings, start_services=True, run_tag="RFIRST", timeout=60, out=None
    )
    _check_figures(first, generate(SIZE, SEED, "RFIRST"))
    # a second run on the same topics and stores is independent of the first
    second = await play(
        SIZE, SEED, settings, start_services=True, run_tag="RSECOND", timeout=60, out=None
    )
    assert _stable(second) == _stable(first)
    assert "every input got its decision or its rejection" in second.render()
