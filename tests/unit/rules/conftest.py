"""Builders for the rules and processor tests: registry facts, inputs, a driven processor.

Helpers are reached through fixtures (`b` for builders, `collection` / `benefits` for driven
processors) because conftest modules are not importable reliably from test modules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from contracts import (
    OUTBOUND_CLASSES,
    AffiliationEnregistree,
    ConventionConclue,
    ConventionResiliee,
    CotisationDue,
    CotisationImpayee,
    OrganismeDeclare,
    PaiementRecu,
    PrestationEspecesDue,
    make_nir,
)
from services.adapters.eventstore import NewEvent
from services.domain.benefits.processor import BenefitsProcessor
from services.domain.benefits.view import BenefitsView
from services.domain.collection.processor import CollectionProcessor
from services.domain.collection.view import CollectionView
from services.domain.kernel.processing import Input, Outcome
from services.domain.registry import Registry

INPUT_IDS = uuid.UUID("0b1e3c1a-6a55-4a07-9a49-1f2a7d0e0001")


class Builders:
    """Terse builders of contract payloads (validated models) and registries."""

    ENC = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
    VERS = "VERSEMENT_PRESTATIONS_ESPECES"
    NIR = make_nir("1800175123456")
    NIR2 = make_nir("2850613055012")
    CAISSE = "PL-IDF"
    OC = "OC-MUT-01"
    CNV = "CNV-1"

    @staticmethod
    def org(oid: str = OC, forme: str = "MUTUELLE", nom: str = "Mutuelle") -> OrganismeDeclare:
        return OrganismeDeclare(organisme_id=oid, nom=nom, forme_juridique=forme)

    @staticmethod
    def convention(
        cid: str = CNV,
        oid: str = OC,
        objet: str = ENC,
        caisses: tuple[str, ...] = (CAISSE,),
        du: str = "2017-01-01",
        au: str | None = None,
    ) -> ConventionConclue:
        return ConventionConclue(
            convention_id=cid,
            organisme_id=oid,
            objet=objet,
            caisses_de_base=caisses,
            effet_du=du,
            effet_au=au,
        )

    @staticmethod
    def resiliation(cid: str = CNV, au: str = "2017-06-30") -> ConventionResiliee:
        return ConventionResiliee(convention_id=cid, effet_au=au)

    @staticmethod
    def affiliation(
        nir: str = NIR, oid: str = OC, du: str = "2016-01-01", mode: str = "CHOIX"
    ) -> AffiliationEnregistree:
        return AffiliationEnregistree(nir=nir, organisme_id=oid, mode=mode, effet_du=du)

    @staticmethod
    def cotisation(
        cid: str = "COT-1",
        nir: str = NIR,
        categorie: str = "PROFESSION_LIBERALE",
        debut: str = "2017-01-01",
        fin: str | None = None,
        montant: int = 195000,
        caisse: str = CAISSE,
    ) -> CotisationDue:
        return CotisationDue(
            cotisation_id=cid,
            nir=nir,
            categorie=categorie,
            caisse_de_base=caisse,
            periode={"debut": debut, "fin": fin or f"{debut[:4]}-12-31"},
            montant_cents=montant,
            exigible_le=f"{debut[:4]}-12-31",
        )

    @staticmethod
    def paiement(
        pid: str = "PAY-1",
        cid: str = "COT-1",
        montant: int = 50000,
        nir: str = NIR,
        le: str = "2017-02-03",
    ) -> PaiementRecu:
        return PaiementRecu(
            paiement_id=pid, cotisation_id=cid, nir=nir, montant_cents=montant, recu_le=le
        )

    @staticmethod
    def impaye(
        cid: str = "COT-1", restant: int = 145000, nir: str = NIR, le: str = "2017-03-07"
    ) -> CotisationImpayee:
        return CotisationImpayee(
            cotisation_id=cid, nir=nir, restant_du_cents=restant, constatee_le=le
        )

    @staticmethod
    def prestation(
        pid: str = "PRE-1",
        nir: str = NIR,
        categorie: str = "PROFESSION_LIBERALE",
        nature: str = "ALLOCATION_REPOS_MATERNEL",
        le: str = "2017-05-02",
        montant: int = 326900,
        caisse: str = CAISSE,
    ) -> PrestationEspecesDue:
        return PrestationEspecesDue(
            prestation_id=pid,
            nir=nir,
            categorie=categorie,
            caisse_de_base=caisse,
            nature=nature,
            fait_generateur_le=le,
            periode=None,
            montant_cents=montant,
        )

    @staticmethod
    def registry(*facts: Any) -> Registry:
        """A registry folded from registry fact models, as the store records them (JSON)."""
        registry = Registry()
        for fact in facts:
            registry.apply(type(fact).__name__, fact.model_dump(mode="json"))
        return registry

    @classmethod
    def delegable(
        cls, oid: str = OC, forme: str = "MUTUELLE", objet: str = ENC, nir: str = NIR
    ) -> list[Any]:
        """An organism, the NIR's affiliation to it, and its convention for `objet`."""
        return [
            cls.org(oid, forme),
            cls.affiliation(nir, oid),
            cls.convention(oid=oid, objet=objet),
        ]


class Driver:
    """A processor fed input by input, keeping every event it emitted (the store's log)."""

    def __init__(self, processor: CollectionProcessor | BenefitsProcessor) -> None:
        self.processor = processor
        self.log: list[tuple[str, int, NewEvent]] = []
        self.steps = 1
        """People per step of the revision tasks an input opens, all recorded after it
        (and counted in its outcome); 0: none recorded."""
        self._count = 0

    @property
    def view(self) -> Any:
        return self.processor.view

    def next_id(self) -> UUID:
        self._count += 1
        return uuid.uuid5(INPUT_IDS, str(self._count))

    def send(
        self, payload: Any, *, event_id: UUID | None = None, correlation_id: str | None = None
    ) -> Outcome:
        event_id = event_id or self.next_id()
        metadata = {
            "correlation_id": correlation_id,
            "causation_id": None,
            "source": "test",
            "occurred_at": datetime(2017, 1, 15, tzinfo=UTC).isoformat(),
        }
        outcome = self.processor.process(Input(event_id, type(payload).__name__, payload, metadata))
        self.log.extend(outcome.events)
        if self.steps and outcome.refused is None:  # as the service's reviser, at once
            while (step := self.processor.next_step(self.steps)) is not None:
                more = self.processor.process(step)
                assert more.refused is None, more.refused
                self.log.extend(more.events)
                outcome.events.extend(more.events)
        return outcome

    def given(self, *payloads: Any) -> Driver:
        for payload in payloads:
            self.send(payload)
        return self

    def last_input_id(self) -> UUID:
        return uuid.uuid5(INPUT_IDS, str(self._count))

    @staticmethod
    def decisions(outcome: Outcome) -> list[NewEvent]:
        """The decisions of an outcome (everything but the recorded input)."""
        return [e for _, _, e in outcome.events if e.event_type in OUTBOUND_CLASSES]

    def all_decisions(self) -> list[NewEvent]:
        return [e for _, _, e in self.log if e.event_type in OUTBOUND_CLASSES]


@pytest.fixture
def b() -> type[Builders]:
    return Builders


@pytest.fixture
def collection() -> Driver:
    return Driver(CollectionProcessor(CollectionView()))


@pytest.fixture
def benefits() -> Driver:
    return Driver(BenefitsProcessor(BenefitsView()))


@pytest.fixture
def new_driver() -> Callable[[str], Driver]:
    """Make a fresh driver of a service ("collection" or "benefits")."""

    def make(service: str) -> Driver:
        if service == "collection":
            return Driver(CollectionProcessor(CollectionView()))
        return Driver(BenefitsProcessor(BenefitsView()))

    return make
