"""Revisions of alinéa 1 as pure rules: domain.md's examples, A → B → A, what never changes,
what never parks, the outgoing organism's tenure, and revising against the same registry."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import outbound
from contracts.outbound import EncaissementRevise, ResultatEncaissement
from services.domain.collection.revisions import (
    NO_TENURE,
    Tenure,
    after_revision,
    outcome_of,
    revise_contribution,
    tenure_of,
)
from services.domain.collection.rules import (
    RULES_2017,
    Contribution,
    decide_contribution,
    decide_payment,
    decide_unpaid,
)
from services.domain.registry import Registry

if TYPE_CHECKING:
    from unit.rules.conftest import Builders

pytestmark = pytest.mark.unit

M, M2, C1, C2 = "OC-M", "OC-M2", "CNV-C1", "CNV-C2"
ENC = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
DECISION_ID = uuid.UUID("5f0c2a8e-3d1b-4b7e-8a21-0c4e9d6b7a01")
REVISION_ID = uuid.UUID("5f0c2a8e-3d1b-4b7e-8a21-0c4e9d6b7a02")


def start(b: type[Builders]) -> list[Any]:
    """domain.md's examples: C1, M's al.1 convention for PL-IDF from 2017-01-01, open; N
    affiliated to M since 2016."""
    return [b.org(M), b.affiliation(oid=M), b.convention(C1, M)]


def with_m2(b: type[Builders]) -> list[Any]:
    """Also M2, an insurer holding its own al.1 convention C2 for PL-IDF."""
    return [*start(b), b.org(M2, "SOCIETE_ASSURANCE"), b.convention(C2, M2)]


def third_quarter(b: type[Builders], cid: str = "COT-Q3") -> Any:
    return b.cotisation(cid, debut="2017-07-01", fin="2017-09-30")


def current(c: Any, registry: Registry) -> ResultatEncaissement:
    """The outcome the contribution was decided at on `registry` (it must be revisable)."""
    decided = decide_contribution(c, registry, RULES_2017)
    outcome = outcome_of(decided.event_type, decided.payload)
    assert outcome is not None, decided
    return outcome


def revise(
    c: Any, avant: ResultatEncaissement, registry: Registry, tenure: Tenure = NO_TENURE
) -> EncaissementRevise | None:
    return revise_contribution(
        c,
        avant,
        decision_revisee_id=DECISION_ID,
        registry=registry,
        rules=RULES_2017,
        tenure=tenure,
    )


def delegated(organisme: str, convention: str) -> ResultatEncaissement:
    return ResultatEncaissement(
        event_type="EncaissementDelegue",
        organisme_id=organisme,
        convention_id=convention,
        motif=None,
        recouvreur=None,
    )


def not_delegated(motif: str, recouvreur: str | None = "CAISSE_DE_BASE") -> ResultatEncaissement:
    return ResultatEncaissement.model_validate(
        {
            "event_type": "EncaissementNonDelegue",
            "organisme_id": None,
            "convention_id": None,
            "motif": motif,
            "recouvreur": recouvreur,
        }
    )


# -- domain.md's examples ------------------------------------------------------------------


def test_example_1_a_retroactive_termination_revises_a_later_period_only(
    b: type[Builders],
) -> None:
    q3, q2 = third_quarter(b), b.cotisation("COT-Q2", debut="2017-04-01", fin="2017-06-30")
    before = b.registry(*start(b))
    assert current(q3, before) == delegated(M, C1) == current(q2, before)
    after = b.registry(*start(b), b.resiliation(C1, "2017-06-30"))

    revision = revise(q3, current(q3, before), after, Tenure(12300, True))

    assert revision is not None
    assert revision.avant == delegated(M, C1)
    assert revision.apres == not_delegated("AUCUNE_CONVENTION")
    assert revision.decision_revisee_id == DECISION_ID
    assert (revision.deja_encaisse_cents, revision.contentieux_transfere) == (12300, True)
    assert (revision.cotisation_id, revision.nir, revision.caisse_de_base) == (
        "COT-Q3",
        b.NIR,
        b.CAISSE,
    )
    assert revision.regles_version == RULES_2017.version
    assert revision.base_legale == (RULES_2017.base_alinea,)
    assert revision.faits_retenus is not None and revision.faits_retenus.convention is None
    assert revision.faits_retenus.organisme is not None
    assert revision.faits_retenus.organisme.organisme_id == M
    assert revise(q2, current(q2, before), after) is None  # C1 was in force on 2017-04-01


def test_example_2_a_backdated_affiliation_moves_the_contribution_and_its_money(
    b: type[Builders],
) -> None:
    q3 = third_quarter(b)
    before = b.registry(*with_m2(b))
    assert current(q3, before) == delegated(M, C1)
    # follow-ups in M's tenure: 300 € held by M
    booked = decide_payment(b.paiement("PAY-1", "COT-Q3", 30000), contribution(q3, M, 0))
    assert isinstance(booked, outbound.PaiementEncaissePourCompte)
    tenure = tenure_of(M, [(booked.event_type, booked.payload)])
    assert tenure == Tenure(30000, False)
    after = b.registry(*with_m2(b), b.affiliation(oid=M2, du="2017-01-01"))

    revision = revise(q3, current(q3, before), after, tenure)

    assert revision is not None
    assert (revision.avant, revision.apres) == (delegated(M, C1), delegated(M2, C2))
    assert (revision.deja_encaisse_cents, revision.contentieux_transfere) == (30000, False)
    # the next payment is held by M2; the balance counts M's payment too
    known = after_revision(contribution(q3, M, 30000), revision)
    nxt = decide_payment(b.paiement("PAY-2", "COT-Q3", 40000), known)
    assert isinstance(nxt, outbound.PaiementEncaissePourCompte)
    assert nxt.organisme_id == M2
    assert nxt.solde_restant_cents == q3.montant_cents - 30000 - 40000
    assert nxt.faits_retenus == revision.faits_retenus


def test_example_3_a_convention_concluded_later_delegates_a_contribution_not_delegated(
    b: type[Builders],
) -> None:
    q3 = third_quarter(b)
    before = b.registry(b.org(M), b.affiliation(oid=M))
    assert current(q3, before) == not_delegated("AUCUNE_CONVENTION")
    after = b.registry(b.org(M), b.affiliation(oid=M), b.convention(C1, M, du="2017-05-01"))

    revision = revise(q3, current(q3, before), after)

    assert revision is not None
    assert revision.apres == delegated(M, C1)
    assert (revision.deja_encaisse_cents, revision.contentieux_transfere) == (0, False)
    assert revision.faits_retenus is not None and revision.faits_retenus.convention is not None


def test_a_convention_concluded_after_the_reference_date_changes_nothing(
    b: type[Builders],
) -> None:
    q3 = third_quarter(b)
    before = b.registry(b.org(M), b.affiliation(oid=M))
    after = b.registry(b.org(M), b.affiliation(oid=M), b.convention(C1, M, du="2017-07-02"))
    assert revise(q3, current(q3, before), after) is None


def test_a_corrected_legal_form_makes_the_organism_ineligible(b: type[Builders]) -> None:
    q3 = third_quarter(b)
    before = b.registry(*start(b))
    after = b.registry(*start(b), b.org(M, "ORGANISME_SECURITE_SOCIALE"))
    revision = revise(q3, current(q3, before), after, Tenure(5000, True))
    assert revision is not None
    assert revision.apres == not_delegated("ORGANISME_INELIGIBLE")
    assert (revision.deja_encaisse_cents, revision.contentieux_transfere) == (5000, True)


def test_a_convention_resent_without_the_caisse_revises(b: type[Builders]) -> None:
    q3 = third_quarter(b)
    before = b.registry(*start(b))
    after = b.registry(*start(b), b.convention(C1, M, caisses=("PL-PACA",)))
    revision = revise(q3, current(q3, before), after)
    assert revision is not None and revision.apres == not_delegated("AUCUNE_CONVENTION")


# -- A → B → A, and the tenure ---------------------------------------------------------------


def contribution(c: Any, organisme: str | None, paid: int) -> Contribution:
    return Contribution(
        cotisation_id=c.cotisation_id,
        nir=c.nir,
        caisse_de_base=c.caisse_de_base,
        montant_cents=c.montant_cents,
        organisme_id=organisme,
        paid_cents=paid,
        faits_retenus=None,
    )


def test_a_revision_is_revised_back_and_each_tenure_counts_its_own_payments(
    b: type[Builders],
) -> None:
    q3 = third_quarter(b)
    facts = with_m2(b)
    a = current(q3, b.registry(*facts))
    pay_m = ("PaiementEncaissePourCompte", {"organisme_id": M, "montant_cents": 10000})
    # A → B: N is affiliated to M2 from 2017-01-01
    facts.append(b.affiliation(oid=M2, du="2017-01-01"))
    first = revise(q3, a, b.registry(*facts), tenure_of(M, [pay_m]))
    assert first is not None and first.apres == delegated(M2, C2)
    assert first.deja_encaisse_cents == 10000
    # B → A: the same day is recorded again for M (the later recorded wins)
    facts.append(b.affiliation(oid=M, du="2017-01-01"))
    b_outcome = outcome_of(first.event_type, first.payload)
    assert b_outcome is not None and b_outcome == first.apres
    pay_m2 = ("PaiementEncaissePourCompte", {"organisme_id": M2, "montant_cents": 20000})
    litigation_m2 = ("ContentieuxDelegue", {"organisme_id": M2, "restant_du_cents": 1})
    second = revise_contribution(
        q3,
        b_outcome,
        decision_revisee_id=REVISION_ID,
        registry=b.registry(*facts),
        rules=RULES_2017,
        tenure=tenure_of(M2, [pay_m2, litigation_m2]),
    )
    assert second is not None
    assert (second.avant, second.apres) == (delegated(M2, C2), a)
    assert second.decision_revisee_id == REVISION_ID
    assert (second.deja_encaisse_cents, second.contentieux_transfere) == (20000, True)
    # A again, on the registry of A: nothing more
    assert outcome_of(second.event_type, second.payload) == a
    assert revise(q3, a, b.registry(*facts)) is None


def test_the_tenure_counts_only_the_outgoing_organisms_bookings() -> None:
    since: list[tuple[str, dict[str, Any]]] = [
        ("PaiementEncaissePourCompte", {"organisme_id": M, "montant_cents": 100}),
        ("PaiementEncaissePourCompte", {"organisme_id": M2, "montant_cents": 1000}),
        ("PaiementNonImpute", {"paiement_id": "P", "motif": "NON_DELEGUE"}),
        ("PaiementEncaissePourCompte", {"organisme_id": M, "montant_cents": 20}),
        ("ContentieuxDelegue", {"organisme_id": M2, "restant_du_cents": 5}),
        ("ContentieuxSansObjet", {"motif": "SOLDE_NUL"}),
    ]
    assert tenure_of(M, since) == Tenure(120, False)
    assert tenure_of(M2, since) == Tenure(1000, True)
    assert tenure_of("OC-OTHER", since) == NO_TENURE == tenure_of(M, [])


def test_when_only_the_convention_changes_the_organism_keeps_its_money_and_litigation(
    b: type[Builders],
) -> None:
    q3 = third_quarter(b)
    before = b.registry(*start(b))
    # C0, concluded later, has been in force since 2016-06-01: the earliest in force wins
    after = b.registry(*start(b), b.convention("CNV-C0", M, du="2016-06-01"))
    revision = revise(q3, current(q3, before), after, Tenure(90000, True))
    assert revision is not None
    assert revision.apres == delegated(M, "CNV-C0")
    assert (revision.deja_encaisse_cents, revision.contentieux_transfere) == (0, False)


def test_after_a_revision_to_not_delegated_follow_ups_are_not_the_organisms(
    b: type[Builders],
) -> None:
    q3 = third_quarter(b)
    before = b.registry(*start(b))
    after = b.registry(*start(b), b.resiliation(C1, "2017-06-30"))
    revision = revise(q3, current(q3, before), after)
    assert revision is not None
    known = after_revision(contribution(q3, M, 50000), revision)
    payment = decide_payment(b.paiement("PAY-9", "COT-Q3", 100), known)
    assert isinstance(payment, outbound.PaiementNonImpute) and payment.motif == "NON_DELEGUE"
    unpaid = decide_unpaid(b.impaye("COT-Q3"), known)
    assert isinstance(unpaid, outbound.ContentieuxSansObjet) and unpaid.motif == "NON_DELEGUE"


# -- what never changes, what never parks -------------------------------------------------


@pytest.mark.parametrize(
    ("categorie", "debut", "motif"),
    [
        ("PROFESSION_LIBERALE", "2016-07-01", "PERIODE_ANTERIEURE_A_2017"),
        ("PROFESSION_LIBERALE", "2018-01-01", "RECOUVREMENT_URSSAF"),
        ("ARTISAN", "2017-07-01", "CATEGORIE_HORS_CHAMP"),
        ("COMMERCANT", "2017-07-01", "CATEGORIE_HORS_CHAMP"),
    ],
)
def test_a_contribution_decided_by_its_dates_or_category_is_never_revised(
    b: type[Builders], categorie: str, debut: str, motif: str
) -> None:
    c = b.cotisation(categorie=categorie, debut=debut, fin=debut[:4] + "-12-31")
    decided = decide_contribution(c, b.registry(), RULES_2017)
    assert isinstance(decided, outbound.EncaissementNonDelegue) and decided.motif == motif
    assert outcome_of(decided.event_type, decided.payload) is None
    # even if the caller asked: its dates and category give the same answer on any registry
    as_recorded = not_delegated(motif, None if motif == "PERIODE_ANTERIEURE_A_2017" else "URSSAF")
    everything = b.registry(*start(b), b.convention("CNV-2016", M, du="2016-01-01"))
    assert revise(c, as_recorded, everything) is None


def test_a_re_evaluation_that_would_park_leaves_the_decision_standing(b: type[Builders]) -> None:
    q3 = third_quarter(b)
    before = b.registry(*start(b))
    # N is now affiliated, from 2017-01-01, to an organism nobody has declared yet
    after = b.registry(*start(b), b.affiliation(oid="OC-UNDECLARED", du="2017-01-01"))
    assert isinstance(decide_contribution(q3, after, RULES_2017), outbound.DecisionEnAttente)
    assert revise(q3, current(q3, before), after) is None
    # ... and is revised when that organism is declared
    declared = b.registry(
        *start(b),
        b.affiliation(oid="OC-UNDECLARED", du="2017-01-01"),
        b.org("OC-UNDECLARED"),
    )
    revision = revise(q3, current(q3, before), declared)
    assert revision is not None and revision.apres == not_delegated("AUCUNE_CONVENTION")


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("PaiementEncaissePourCompte", {"organisme_id": M}),
        ("ContentieuxDelegue", {"organisme_id": M}),
        ("DecisionEnAttente", {"motif": "AFFILIATION_INCONNUE"}),
        ("EncaissementNonDelegue", {"motif": "RECOUVREMENT_URSSAF", "recouvreur": "URSSAF"}),
        ("VersementDelegue", {"organisme_id": M, "convention_id": C1}),
    ],
)
def test_only_a_contributions_registry_outcome_is_revisable(
    event_type: str, payload: dict[str, Any]
) -> None:
    assert outcome_of(event_type, payload) is None


# -- revising against the registry of the decision gives nothing --------------------------

ORGS = ["OC-1", "OC-2", "OC-3"]
FORMES = ["MUTUELLE", "SOCIETE_ASSURANCE", "MUTUELLE", "ORGANISME_SECURITE_SOCIALE"]
CAISSES = ["PL-IDF", "PL-PACA"]
OBJETS = [ENC, ENC, "VERSEMENT_PRESTATIONS_ESPECES"]
days = st.dates(min_value=date(2016, 6, 1), max_value=date(2018, 6, 30))
in_2017 = st.dates(min_value=date(2017, 1, 1), max_value=date(2017, 12, 31))


@st.composite
def registry_facts(draw: st.DrawFn, b: type[Builders], nir: str, base: bool = False) -> list[Any]:
    """Some registry facts, in any order: organisms (mostly eligible), conventions (mostly
    al.1, some terminated), affiliations of `nir`. A `base` declares every organism and
    affiliates `nir` from mid-2016, so that most 2017 contributions are decided on it."""
    facts: list[Any] = []
    declared = ORGS if base else draw(st.lists(st.sampled_from(ORGS), max_size=3, unique=True))
    for oid in declared:
        facts.append(b.org(oid, draw(st.sampled_from(FORMES))))
    if base:
        facts.append(b.affiliation(nir, draw(st.sampled_from(ORGS)), "2016-06-01"))
    for _ in range(draw(st.integers(0, 4))):
        cid = f"CNV-{draw(st.integers(0, 5))}"  # the same id twice: a convention re-sent
        du, au = draw(days), draw(st.none() | days)
        if au is not None and au < du:
            du, au = au, du
        caisses = draw(st.lists(st.sampled_from(CAISSES), min_size=1, unique=True))
        objet = draw(st.sampled_from(OBJETS))
        oid = draw(st.sampled_from(ORGS))
        fin = None if au is None else au.isoformat()
        facts.append(b.convention(cid, oid, objet, tuple(caisses), du.isoformat(), fin))
        if draw(st.integers(0, 3)) == 0:
            facts.append(b.resiliation(cid, draw(days).isoformat()))
    for _ in range(draw(st.integers(0, 3))):
        du = draw(days)
        facts.append(b.affiliation(nir, draw(st.sampled_from(ORGS)), du.isoformat()))
    return draw(st.permutations(facts))


@st.composite
def contributions(draw: st.DrawFn, b: type[Builders]) -> Any:
    """Mostly revisable: a profession libérale's contribution of 2017."""
    return b.cotisation(
        "COT-GEN",
        categorie=draw(st.sampled_from(["PROFESSION_LIBERALE"] * 5 + ["ARTISAN"])),
        debut=draw(st.one_of(in_2017, in_2017, in_2017, days)).isoformat(),
        fin="2019-12-31",
        caisse=draw(st.sampled_from(CAISSES)),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_revising_against_the_registry_of_the_decision_gives_nothing(
    b: type[Builders], data: st.DataObject
) -> None:
    facts, c = data.draw(registry_facts(b, b.NIR, base=True)), data.draw(contributions(b))
    registry = b.registry(*facts)
    decided = decide_contribution(c, registry, RULES_2017)
    outcome = outcome_of(decided.event_type, decided.payload)
    if outcome is not None:
        assert revise(c, outcome, registry, Tenure(1, True)) is None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_revision_says_what_a_decision_on_the_new_registry_would_say(
    b: type[Builders], data: st.DataObject
) -> None:
    """Before ⊂ after: the revision's `apres` is the fresh decision's outcome, and the
    revision on the new registry is final (revising it again gives nothing)."""
    facts, later, c = (
        data.draw(registry_facts(b, b.NIR, base=True)),
        data.draw(registry_facts(b, b.NIR)),
        data.draw(contributions(b)),
    )
    before, after = b.registry(*facts), b.registry(*facts, *later)
    decided = decide_contribution(c, before, RULES_2017)
    avant = outcome_of(decided.event_type, decided.payload)
    if avant is None:
        return
    revision = revise(c, avant, after)
    fresh = decide_contribution(c, after, RULES_2017)
    if revision is None:
        assert fresh.parked or outcome_of(fresh.event_type, fresh.payload) == avant
        return
    assert revision.apres == outcome_of(fresh.event_type, fresh.payload) != avant
    assert revision.faits_retenus == fresh.faits_retenus
    assert revision.base_legale == fresh.base_legale
    assert revise(c, revision.apres, after) is None
