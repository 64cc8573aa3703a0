"""Revisions of alinéa 2 as pure rules: domain.md's example 4, its converse, A → B → A, what
never changes, what never parks, and revising against the same registry."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.outbound import ResultatVersement, VersementRevise
from services.domain.benefits.revisions import outcome_of, revise_benefit
from services.domain.benefits.rules import RULES_2017, decide_benefit
from services.domain.registry import Registry

if TYPE_CHECKING:
    from unit.rules.conftest import Builders

pytestmark = pytest.mark.unit

M, M2, C2, C3 = "OC-M", "OC-M2", "CNV-C2", "CNV-C3"
VERS = "VERSEMENT_PRESTATIONS_ESPECES"
AL2, L160_17 = RULES_2017.base_alinea, RULES_2017.base_organismes
DECISION_ID = uuid.UUID("9a7e1c55-0b8d-4e62-a1f3-2d6c8b4e0f01")


def start(b: type[Builders]) -> list[Any]:
    """M holds C2, a cash-benefit convention for PL-IDF from 2017-01-01; N affiliated to M."""
    return [b.org(M), b.affiliation(oid=M), b.convention(C2, M, VERS)]


def current(p: Any, registry: Registry) -> ResultatVersement:
    decided = decide_benefit(p, registry, RULES_2017)
    outcome = outcome_of(decided.event_type, decided.payload)
    assert outcome is not None, decided
    return outcome


def revise(p: Any, avant: ResultatVersement, registry: Registry) -> VersementRevise | None:
    return revise_benefit(
        p, avant, decision_revisee_id=DECISION_ID, registry=registry, rules=RULES_2017
    )


def delegue(organisme: str = M, convention: str = C2) -> ResultatVersement:
    return ResultatVersement(
        event_type="VersementDelegue", organisme_id=organisme, convention_id=convention, motif=None
    )


DIRECT = ResultatVersement.model_validate(
    {
        "event_type": "VersementDirect",
        "organisme_id": None,
        "convention_id": None,
        "motif": "AUCUNE_CONVENTION",
    }
)


def test_example_4_a_convention_terminated_before_the_benefit_makes_the_caisse_pay(
    b: type[Builders],
) -> None:
    p = b.prestation(le="2017-05-02")
    before = b.registry(*start(b))
    assert current(p, before) == delegue()
    after = b.registry(*start(b), b.resiliation(C2, "2017-04-30"))

    revision = revise(p, current(p, before), after)

    assert revision is not None
    assert (revision.avant, revision.apres) == (delegue(), DIRECT)
    assert revision.decision_revisee_id == DECISION_ID
    assert (revision.prestation_id, revision.nature, revision.montant_cents) == (
        p.prestation_id,
        p.nature,
        p.montant_cents,
    )
    assert (revision.nir, revision.caisse_de_base) == (b.NIR, b.CAISSE)
    assert revision.base_legale == (AL2,)
    assert revision.regles_version == RULES_2017.version
    assert revision.faits_retenus is not None and revision.faits_retenus.convention is None


def test_a_termination_after_the_benefit_changes_nothing(b: type[Builders]) -> None:
    p = b.prestation(le="2017-05-02")
    before = b.registry(*start(b))
    for last_day in ("2017-05-02", "2017-12-31"):  # bounds inclusive: still in force
        after = b.registry(*start(b), b.resiliation(C2, last_day))
        assert revise(p, current(p, before), after) is None


def test_a_convention_concluded_later_delegates_a_direct_payment(b: type[Builders]) -> None:
    p = b.prestation(le="2017-05-02")
    before = b.registry(b.org(M), b.affiliation(oid=M))
    assert current(p, before) == DIRECT
    after = b.registry(b.org(M), b.affiliation(oid=M), b.convention(C2, M, VERS))
    revision = revise(p, DIRECT, after)
    assert revision is not None and revision.apres == delegue()
    assert revision.base_legale == (AL2, L160_17)
    assert revision.faits_retenus is not None and revision.faits_retenus.convention is not None


def test_a_collection_convention_does_not_delegate_a_benefit(b: type[Builders]) -> None:
    p = b.prestation(le="2017-05-02")
    before = b.registry(b.org(M), b.affiliation(oid=M))
    after = b.registry(b.org(M), b.affiliation(oid=M), b.convention(C2, M))  # al.1 object
    assert revise(p, current(p, before), after) is None


def test_a_benefit_is_revised_to_another_organism_and_back(b: type[Builders]) -> None:
    p = b.prestation(le="2017-05-02")
    facts = [*start(b), b.org(M2, "SOCIETE_ASSURANCE"), b.convention(C3, M2, VERS)]
    a = current(p, b.registry(*facts))
    facts.append(b.affiliation(oid=M2, du="2017-01-01"))
    first = revise(p, a, b.registry(*facts))
    assert first is not None and (first.avant, first.apres) == (delegue(), delegue(M2, C3))
    facts.append(b.affiliation(oid=M, du="2017-01-01"))  # the same day again: the later wins
    now = outcome_of(first.event_type, first.payload)
    assert now == first.apres
    second = revise(p, now, b.registry(*facts))
    assert second is not None and (second.avant, second.apres) == (delegue(M2, C3), a)
    assert revise(p, a, b.registry(*facts)) is None


def test_a_benefit_decided_by_its_date_is_never_revised(b: type[Builders]) -> None:
    p = b.prestation(le="2016-12-31")
    decided = decide_benefit(p, b.registry(), RULES_2017)
    assert decided.event_type == "PrestationNonTraitee"
    assert outcome_of(decided.event_type, decided.payload) is None
    # asked anyway, with a registry that would delegate a 2017 benefit: nothing
    assert revise(p, DIRECT, b.registry(*start(b))) is None


def test_a_re_evaluation_that_would_park_leaves_the_decision_standing(b: type[Builders]) -> None:
    p = b.prestation(le="2017-05-02")
    before = b.registry(*start(b))
    after = b.registry(*start(b), b.affiliation(oid="OC-UNDECLARED", du="2017-01-01"))
    assert decide_benefit(p, after, RULES_2017).parked
    assert revise(p, current(p, before), after) is None


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("PrestationNonTraitee", {"motif": "PERIODE_ANTERIEURE_A_2017"}),
        ("DecisionEnAttente", {"motif": "AFFILIATION_INCONNUE"}),
        ("EncaissementDelegue", {"organisme_id": M, "convention_id": C2}),
    ],
)
def test_only_a_benefits_registry_outcome_is_revisable(
    event_type: str, payload: dict[str, Any]
) -> None:
    assert outcome_of(event_type, payload) is None


ORGS = ["OC-1", "OC-2"]
days = st.dates(min_value=date(2016, 6, 1), max_value=date(2017, 12, 31))
mostly_2017 = st.one_of(
    *[st.dates(min_value=date(2017, 1, 1), max_value=date(2017, 12, 31))] * 3, days
)


@st.composite
def registry_facts(draw: st.DrawFn, b: type[Builders], base: bool) -> list[Any]:
    """Registry facts in any order; a `base` declares both organisms and affiliates N."""
    facts: list[Any] = [b.org(o) for o in ORGS] if base else []
    if base:
        facts.append(b.affiliation(oid=draw(st.sampled_from(ORGS)), du="2016-06-01"))
    for _ in range(draw(st.integers(0, 3))):
        cid = f"CNV-{draw(st.integers(0, 3))}"
        du = draw(days)
        objet = draw(st.sampled_from([VERS, VERS, "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"]))
        caisses = (draw(st.sampled_from(["PL-IDF", "PL-PACA"])),)
        oid = draw(st.sampled_from(ORGS))
        facts.append(b.convention(cid, oid, objet, caisses, du.isoformat()))
        if draw(st.booleans()):
            facts.append(b.resiliation(cid, draw(days).isoformat()))
    for _ in range(draw(st.integers(0, 2))):
        facts.append(b.affiliation(oid=draw(st.sampled_from(ORGS)), du=draw(days).isoformat()))
    return draw(st.permutations(facts))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_revising_on_the_registry_of_the_decision_gives_nothing_and_on_a_later_one_its_answer(
    b: type[Builders], data: st.DataObject
) -> None:
    base, later = data.draw(registry_facts(b, True)), data.draw(registry_facts(b, False))
    p = b.prestation(le=data.draw(mostly_2017).isoformat())
    before, after = b.registry(*base), b.registry(*base, *later)
    decided = decide_benefit(p, before, RULES_2017)
    avant = outcome_of(decided.event_type, decided.payload)
    if avant is None:
        return
    assert revise(p, avant, before) is None
    revision, fresh = revise(p, avant, after), decide_benefit(p, after, RULES_2017)
    if revision is None:
        assert fresh.parked or outcome_of(fresh.event_type, fresh.payload) == avant
    else:
        assert revision.apres == outcome_of(fresh.event_type, fresh.payload) != avant
        assert (revision.base_legale, revision.faits_retenus) == (
            fresh.base_legale,
            fresh.faits_retenus,
        )
