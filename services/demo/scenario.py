"""A realistic upstream scenario for `mandat run`, generated deterministically.

The registry (organisms of every legal form, conventions of both objects over several
caisses de base, one of them terminated mid-2017, affiliations by choice and d'office,
insured changing organism), contributions over 2016–2018 for the three L611-1 categories
with their payments (full, partial, in excess, none) and unpaid notices, cash benefits of
every nature, plus a few contract breaches, duplicates and facts out of order.

`generate(size, seed, run_tag)` gives the same scenario for the same (size, seed) apart from
`run_tag`, which prefixes every business id and seeds the NIRs and event ids: each run is
independent of earlier runs on the same topics, and the same seed gives the same figures.

Messages are published in three phases: 1 the registry, 2 the contributions and benefits
(and the breaches and duplicates), 3 a few affiliations published after the contributions
and benefits they govern (those inputs wait, parked, until then). Each message says what
the services must do with it (`kind`): decide it, ignore it (a duplicate), or reject it.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Final

from contracts.nir import make_nir

# topic roles (the actual topic names come from the settings)
REFERENTIEL: Final = "referentiel"
COTISATIONS: Final = "cotisations"
PRESTATIONS: Final = "prestations"
ROLES: Final = (REFERENTIEL, COTISATIONS, PRESTATIONS)

COLLECTION: Final = "collection"
BENEFITS: Final = "benefits"
SERVICES: Final = (COLLECTION, BENEFITS)
SERVICES_OF: Final[dict[str, tuple[str, ...]]] = {
    REFERENTIEL: (COLLECTION, BENEFITS),
    COTISATIONS: (COLLECTION,),
    PRESTATIONS: (BENEFITS,),
}

# what a message is, hence what the services must do with it
FACT: Final = "fact"  # a registry fact: recorded, no decision of its own
INPUT: Final = "input"  # a contribution, payment, unpaid notice or benefit: gets a decision
DUPLICATE: Final = "duplicate"  # the same event_id again: no effect
RESEND: Final = "resend"  # same business id and content under a new event_id: no effect
CONFLICT: Final = "conflict"  # same business id, other content: rejected
BREACH: Final = "breach"  # breaks the wire contract: rejected
REJECTED_KINDS: Final = frozenset({CONFLICT, BREACH})

_IDS: Final = uuid.UUID("b1d3c0de-6112-4020-8a1e-5ce9a7105001")
_TAG: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,15}")

# Realistic figures (domain.md), in cents
PASS: Final = {2016: 3_861_600, 2017: 3_922_800, 2018: 3_973_200}
"""Plafond annuel de la sécurité sociale."""
PMSS: Final = {2016: 321_800, 2017: 326_900, 2018: 331_100}
"""Plafond mensuel: the allocation forfaitaire de repos maternel."""
YEARS: Final = (2016, 2017, 2018)
IJ_CARENCE_DAYS: Final = 3
PATERNITE_DAYS: Final = 11

REGIONS: Final = ("IDF", "PACA", "ARA", "OCC", "NAQ", "HDF")
_REGION_WEIGHTS: Final = (30, 15, 17, 12, 13, 13)
PL_CAISSES: Final = tuple(f"PL-{r}" for r in REGIONS)
AC_CAISSES: Final = tuple(f"AC-{r}" for r in REGIONS)

CATEGORIES: Final = ("PROFESSION_LIBERALE", "ARTISAN", "COMMERCANT")
NATURES: Final = ("IJ_MALADIE", "IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL", "IJ_PATERNITE")
FORMES: Final = (
    "MUTUELLE",
    "SOCIETE_ASSURANCE",
    "GROUPEMENT_SOCIETES_ASSURANCE",
    "ORGANISME_SECURITE_SOCIALE",
)
ENCAISSEMENT: Final = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
VERSEMENT: Final = "VERSEMENT_PRESTATIONS_ESPECES"
IJ_MALADIE_PL_FROM: Final = date(2021, 7, 1)
"""Professions libérales had no IJ maladie before this date: none are generated."""


@dataclass(frozen=True)
class Organism:
    """An organism of the registry (id without the run tag)."""

    organisme_id: str
    nom: str
    forme_juridique: str


ORGANISMS: Final = (
    Organism("OC-MUT-01", "Mutuelle des Professions Libérales", "MUTUELLE"),
    Organism("OC-MUT-02", "Mutuelle Artisanale et Commerciale", "MUTUELLE"),
    Organism("OC-MUT-03", "Mutuelle Santé Indépendants du Sud", "MUTUELLE"),
    Organism("OC-SA-01", "Libéra Assurances", "SOCIETE_ASSURANCE"),
    Organism("OC-SA-02", "Hexagone Prévoyance", "SOCIETE_ASSURANCE"),
    Organism(
        "OC-GSA-01", "Groupement des Assureurs des Indépendants", "GROUPEMENT_SOCIETES_ASSURANCE"
    ),
    Organism("OC-GSA-02", "Union Régionale d'Assureurs Maladie", "GROUPEMENT_SOCIETES_ASSURANCE"),
    Organism(
        "OC-OSS-01", "Caisse Régionale des Indépendants Île-de-France", "ORGANISME_SECURITE_SOCIALE"
    ),
    Organism("OC-OSS-02", "Caisse Maladie Régionale Rhône-Alpes", "ORGANISME_SECURITE_SOCIALE"),
)


@dataclass(frozen=True)
class Convention:
    """A convention of the registry (ids without the run tag)."""

    convention_id: str
    organisme_id: str
    objet: str
    caisses_de_base: tuple[str, ...]
    effet_du: date
    effet_au: date | None = None
    resiliee_au: date | None = None  # terminated by a ConventionResiliee


CONVENTIONS: Final = (
    Convention(
        "CNV-2017-001",
        "OC-MUT-01",
        ENCAISSEMENT,
        ("PL-IDF", "PL-PACA", "PL-ARA", "PL-OCC"),
        date(2017, 1, 1),
    ),
    Convention(
        "CNV-2017-002",
        "OC-MUT-01",
        VERSEMENT,
        ("PL-IDF", "PL-PACA", "PL-ARA", "PL-OCC", "AC-IDF", "AC-PACA"),
        date(2017, 1, 1),
    ),
    Convention("CNV-2017-003", "OC-MUT-02", ENCAISSEMENT, ("PL-NAQ", "PL-HDF"), date(2017, 1, 1)),
    Convention(
        "CNV-2017-004",
        "OC-MUT-02",
        VERSEMENT,
        ("AC-IDF", "AC-ARA", "AC-NAQ", "AC-HDF", "PL-NAQ", "PL-HDF"),
        date(2017, 1, 1),
    ),
    Convention("CNV-2017-005", "OC-MUT-03", ENCAISSEMENT, ("PL-PACA", "PL-OCC"), date(2017, 7, 1)),
    Convention(
        "CNV-2017-006",
        "OC-SA-01",
        ENCAISSEMENT,
        ("PL-IDF", "PL-ARA", "PL-NAQ", "PL-HDF"),
        date(2017, 1, 1),
    ),
    Convention(
        "CNV-2017-007",
        "OC-SA-01",
        VERSEMENT,
        ("PL-IDF", "PL-ARA"),
        date(2017, 1, 1),
        effet_au=date(2018, 12, 31),
    ),
    Convention(
        "CNV-2017-008",
        "OC-SA-02",
        ENCAISSEMENT,
        ("PL-IDF", "PL-PACA"),
        date(2017, 1, 1),
        resiliee_au=date(2017, 6, 30),
    ),
    Convention("CNV-2017-009", "OC-GSA-01", ENCAISSEMENT, PL_CAISSES, date(2017, 1, 1)),
    Convention("CNV-2017-010", "OC-GSA-01", VERSEMENT, PL_CAISSES + AC_CAISSES, date(2017, 1, 1)),
    Convention("CNV-2017-011", "OC-GSA-02", ENCAISSEMENT, ("PL-ARA", "PL-OCC"), date(2017, 1, 1)),
    Convention(
        "CNV-2017-012", "OC-OSS-01", VERSEMENT, ("AC-IDF", "AC-HDF", "PL-IDF"), date(2017, 1, 1)
    ),
)

# where the insured are affiliated, by category (organism id -> weight)
_PL_ORGANISMS: Final = {
    "OC-MUT-01": 20,
    "OC-MUT-02": 5,
    "OC-MUT-03": 10,
    "OC-SA-01": 15,
    "OC-SA-02": 10,
    "OC-GSA-01": 15,
    "OC-GSA-02": 10,
    "OC-OSS-01": 10,
    "OC-OSS-02": 5,
}
_AC_ORGANISMS: Final = {
    "OC-MUT-01": 10,
    "OC-MUT-02": 35,
    "OC-SA-01": 5,
    "OC-GSA-01": 15,
    "OC-OSS-01": 20,
    "OC-OSS-02": 15,
}
_DEPARTEMENTS: Final = (
    "75",
    "92",
    "93",
    "94",
    "13",
    "06",
    "69",
    "38",
    "31",
    "34",
    "33",
    "44",
    "59",
    "62",
    "67",
    "35",
    "2A",
    "2B",
    "97",
)

# payment patterns of a contribution: name -> weight
_PATTERNS: Final = {
    "FULL": 60,
    "TWO_PARTS": 10,
    "EXCESS": 5,
    "PARTIAL_UNPAID": 8,
    "UNPAID": 8,
    "PAID_THEN_NOTICE": 4,
    "PENDING": 5,
}


@dataclass(frozen=True)
class Message:
    """One message as an upstream system publishes it, and what must come of it."""

    topic: str  # role: "referentiel" | "cotisations" | "prestations"
    key: bytes | None
    value: bytes
    phase: int = 2  # 1 registry, 2 contributions and benefits, 3 late registry facts
    kind: str = INPUT  # FACT, INPUT, DUPLICATE, RESEND, CONFLICT or BREACH
    event_id: str | None = None
    event_type: str | None = None
    subject: str | None = None  # business id (without the run tag), to say what is missing
    parks: bool = False  # expected to be parked (DecisionEnAttente) before it is decided
    note: str = ""  # why a breach breaks the contract

    @property
    def services(self) -> tuple[str, ...]:
        """The services that consume this message's topic."""
        return SERVICES_OF[self.topic]

    @property
    def needs_decision(self) -> bool:
        """Whether each of its services must publish a final decision caused by it."""
        return self.kind == INPUT

    @property
    def rejected_by(self) -> tuple[str, ...]:
        """The services that must reject it (to their rejection topic)."""
        return self.services if self.kind in REJECTED_KINDS else ()

    def document(self) -> dict[str, Any]:
        """The JSON envelope (only for messages whose value is JSON)."""
        decoded: dict[str, Any] = json.loads(self.value)
        return decoded


@dataclass(frozen=True)
class Scenario:
    """Everything `mandat run` publishes, in publication order, with its expectations."""

    size: int
    seed: int
    run_tag: str
    messages: tuple[Message, ...]
    organisms: tuple[Organism, ...] = ORGANISMS
    conventions: tuple[Convention, ...] = CONVENTIONS

    def tagged(self, business_id: str) -> str:
        """The id as published in this run."""
        return f"{self.run_tag}-{business_id}"

    def local(self, business_id: str) -> str:
        """The id without this run's tag (as shown in summaries)."""
        prefix = f"{self.run_tag}-"
        return business_id[len(prefix) :] if business_id.startswith(prefix) else business_id

    def untag(self, text: str) -> str:
        """`text` with every occurrence of this run's tag prefix removed."""
        return text.replace(f"{self.run_tag}-", "")

    def phase(self, n: int) -> list[tuple[int, Message]]:
        """(index, message) of phase `n`, in publication order."""
        return [(i, m) for i, m in enumerate(self.messages) if m.phase == n]

    def inputs(self, service: str) -> list[tuple[int, Message]]:
        """(index, message) of the inputs `service` must decide."""
        return [
            (i, m)
            for i, m in enumerate(self.messages)
            if m.needs_decision and service in m.services
        ]

    def rejections(self, service: str) -> list[tuple[int, Message]]:
        """(index, message) of the messages `service` must reject."""
        return [(i, m) for i, m in enumerate(self.messages) if service in m.rejected_by]

    def expected(self) -> dict[str, dict[str, int]]:
        """Per service: inputs to decide, rejections, inputs parked before their decision."""
        return {
            s: {
                "decided": len(self.inputs(s)),
                "rejected": len(self.rejections(s)),
                "parked": sum(1 for _, m in self.inputs(s) if m.parks),
            }
            for s in SERVICES
        }

    def counts(self) -> dict[str, int]:
        """Messages by kind (and in all)."""
        found = Counter(m.kind for m in self.messages)
        return {"messages": len(self.messages), **dict(sorted(found.items()))}

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        """The payloads of the inputs of `event_type` (each once: no duplicates)."""
        return [
            m.document()["payload"]
            for m in self.messages
            if m.kind == INPUT and m.event_type == event_type
        ]


def generate(size: int, seed: int, run_tag: str) -> Scenario:
    """The scenario of about `size` contribution and benefit inputs for `seed`.

    Deterministic for (size, seed); `run_tag` (letters, digits, `_`; at most 16) prefixes
    every business id and seeds the NIRs and event ids.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    if _TAG.fullmatch(run_tag) is None:
        raise ValueError(f"run_tag must be 1-16 letters, digits or _ (got {run_tag!r})")
    return _Builder(size, seed, run_tag).build()


def new_run_tag() -> str:
    """A fresh run tag: R + 7 hex digits."""
    return "R" + uuid.uuid4().hex[:7].upper()


# ---------------------------------------------------------------------------------------
# amounts


def _div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (both positive): integer cents only."""
    return (2 * numerator + denominator) // (2 * denominator)


def annual_contribution(revenu_cents: int, year: int) -> int:
    """Health contribution of a year's income (cents): 3 % + 3.5 % × min(R/PASS, 0.7)/0.7.

    R × (3/100 + 35/1000 × min(10R, 7P)/(7P)) = R × (6P + min(10R, 7P)) / (200P).
    """
    p = PASS[year]
    return _div(revenu_cents * (6 * p + min(10 * revenu_cents, 7 * p)), 200 * p)


def ij_forfaitaire(year: int) -> int:
    """Daily flat maternity/paternity allowance (cents): PASS / 730 (53.74 € in 2017)."""
    return _div(PASS[year], 730)


def ij_maladie(revenu_cents: int, year: int) -> int:
    """Daily sickness allowance of artisans and commerçants (cents): income (≤ PASS) / 730."""
    return max(1, _div(min(revenu_cents, PASS[year]), 730))


def _days(debut: date, fin: date) -> int:
    return (fin - debut).days + 1


# ---------------------------------------------------------------------------------------
# people


@dataclass
class _Person:
    index: int
    nir: str
    female: bool
    categorie: str
    caisse: str
    organisme: str
    mode: str
    debut: date  # start of activity (and of the first affiliation)
    fin: date | None  # end of activity
    semestriel: bool  # contributions called per half-year rather than per year
    revenus: dict[int, int]  # income per year, cents
    change: tuple[date, str] | None = None  # a new affiliation during the period
    late: bool = False  # affiliations published after the contributions and benefits

    def actif(self, debut: date, fin: date) -> tuple[date, date] | None:
        start, end = max(debut, self.debut), min(fin, self.fin or fin)
        return (start, end) if start <= end else None

    def organisme_at(self, jour: date) -> str:
        if self.change is not None and jour >= self.change[0]:
            return self.change[1]
        return self.organisme


@dataclass
class _Entry:
    """A message waiting to be sorted into publication order."""

    when: date
    order: int
    message: Message


@dataclass
class _Builder:
    size: int
    seed: int
    tag: str
    rng: random.Random = field(init=False)  # the structure: from the seed only
    ids_rng: random.Random = field(init=False)  # NIR bodies: from the seed and the run tag
    serial: int = 0
    inputs: int = 0  # contribution and benefit inputs so far
    counters: Counter[str] = field(default_factory=Counter)
    people: list[_Person] = field(default_factory=list)
    nirs: set[str] = field(default_factory=set)
    registry: list[Message] = field(default_factory=list)
    late: list[Message] = field(default_factory=list)
    by_category: dict[tuple[str, bool, bool], list[_Person]] = field(default_factory=dict)
    feed: list[_Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"mandat-demo/{self.seed}")
        self.ids_rng = random.Random(f"mandat-demo/{self.seed}/{self.tag}")

    # -- envelopes --------------------------------------------------------------------
    def t(self, business_id: str) -> str:
        return f"{self.tag}-{business_id}"

    def next_id(self, prefix: str, width: int, year: int | None = None) -> str:
        self.counters[prefix] += 1
        middle = f"{year}-" if year is not None else ""
        return f"{prefix}-{middle}{self.counters[prefix]:0{width}d}"

    def envelope(
        self,
        event_type: str,
        payload: dict[str, Any],
        when: date,
        source: str,
        correlation: str | None,
    ) -> dict[str, Any]:
        self.serial += 1
        return {
            "event_id": str(uuid.uuid5(_IDS, f"{self.tag}/{self.seed}/{self.serial}")),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": f"{when.isoformat()}T08:00:00Z",
            "source": source,
            "correlation_id": correlation,
            "causation_id": None,
            "payload": payload,
        }

    @staticmethod
    def encode(document: dict[str, Any]) -> bytes:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def message(
        self,
        topic: str,
        key: str,
        document: dict[str, Any],
        *,
        phase: int = 2,
        kind: str = INPUT,
        subject: str | None = None,
        parks: bool = False,
        note: str = "",
    ) -> Message:
        return Message(
            topic,
            key.encode(),
            self.encode(document),
            phase,
            kind,
            str(document.get("event_id")),
            str(document.get("event_type")),
            subject,
            parks,
            note,
        )

    # -- the whole scenario -----------------------------------------------------------
    def build(self) -> Scenario:
        self.declare_registry()
        budget = max(1, round(self.size * 0.78))
        while self.inputs < budget or len(self.people) < len(_FORCED):
            self.add_person()
        self.add_benefits(max(len(_COMBOS) + 2, self.size - self.inputs))
        self.add_out_of_order_payments()
        self.add_duplicates_and_conflicts()
        self.add_breaches()
        for person in self.people:
            self.affiliate(person)
        ordered = sorted(self.feed, key=lambda e: (e.when, e.order))
        messages = (*self.registry, *(e.message for e in ordered), *self.late)
        return Scenario(self.size, self.seed, self.tag, messages)

    def add(self, when: date, message: Message) -> None:
        self.feed.append(_Entry(when, len(self.feed), message))
        self.inputs += message.kind == INPUT

    # -- registry ---------------------------------------------------------------------
    def declare_registry(self) -> None:
        caisse_nationale = "caisse-nationale/RSI"
        payload: dict[str, Any]
        for o in ORGANISMS:
            payload = {
                "organisme_id": self.t(o.organisme_id),
                "nom": o.nom,
                "forme_juridique": o.forme_juridique,
            }
            doc = self.envelope(
                "OrganismeDeclare", payload, date(2016, 12, 1), caisse_nationale, None
            )
            self.registry.append(
                self.message(
                    REFERENTIEL,
                    payload["organisme_id"],
                    doc,
                    phase=1,
                    kind=FACT,
                    subject=o.organisme_id,
                )
            )
        for c in CONVENTIONS:
            payload = {
                "convention_id": self.t(c.convention_id),
                "organisme_id": self.t(c.organisme_id),
                "objet": c.objet,
                "caisses_de_base": list(c.caisses_de_base),
                "effet_du": c.effet_du.isoformat(),
                "effet_au": c.effet_au.isoformat() if c.effet_au else None,
            }
            doc = self.envelope(
                "ConventionConclue", payload, date(2016, 12, 15), caisse_nationale, None
            )
            self.registry.append(
                self.message(
                    REFERENTIEL,
                    payload["convention_id"],
                    doc,
                    phase=1,
                    kind=FACT,
                    subject=c.convention_id,
                )
            )
        for c in CONVENTIONS:
            if c.resiliee_au is None:
                continue
            payload = {
                "convention_id": self.t(c.convention_id),
                "effet_au": c.resiliee_au.isoformat(),
            }
            doc = self.envelope(
                "ConventionResiliee", payload, c.resiliee_au, caisse_nationale, None
            )
            self.registry.append(
                self.message(
                    REFERENTIEL,
                    payload["convention_id"],
                    doc,
                    phase=1,
                    kind=FACT,
                    subject=c.convention_id,
                )
            )

    def affiliate(self, person: _Person) -> None:
        steps = [(person.debut, person.organisme, person.mode)]
        if person.change is not None:
            steps.append((person.change[0], person.change[1], "CHOIX"))
        for effet_du, organisme, mode in steps:
            payload = {
                "nir": person.nir,
                "organisme_id": self.t(organisme),
                "mode": mode,
                "effet_du": effet_du.isoformat(),
            }
            doc = self.envelope(
                "AffiliationEnregistree", payload, effet_du, f"caisse-de-base/{person.caisse}", None
            )
            target = self.late if person.late else self.registry
            target.append(
                self.message(
                    REFERENTIEL,
                    person.nir,
                    doc,
                    phase=3 if person.late else 1,
                    kind=FACT,
                    subject=f"affiliation #{person.index}",
                )
            )

    # -- people and their contributions -----------------------------------------------
    def new_nir(self, female: bool, born: int, month: int) -> str:
        while True:
            dept = self.ids_rng.choice(_DEPARTEMENTS)
            place = (
                f"{dept}{self.ids_rng.randint(1, 989):03d}"
                if dept != "97"
                else f"97{self.ids_rng.randint(1, 6)}{self.ids_rng.randint(1, 89):02d}"
            )
            body = (
                f"{2 if female else 1}{born % 100:02d}{month:02d}{place}"
                f"{self.ids_rng.randint(1, 999):03d}"
            )
            nir = make_nir(body)
            if nir not in self.nirs:
                self.nirs.add(nir)
                return nir

    def add_person(self) -> None:
        rng, index = self.rng, len(self.people)
        forced = _FORCED[index] if index < len(_FORCED) else None
        if forced is not None:  # the first persons cover every category, sex and organism
            categorie, organisme, female, region, semestriel, changes = forced
        else:
            categorie = rng.choices(CATEGORIES, (50, 25, 25))[0]
            weights = _PL_ORGANISMS if categorie == "PROFESSION_LIBERALE" else _AC_ORGANISMS
            organisme = rng.choices(list(weights), list(weights.values()))[0]
            female = rng.random() < 0.45
            region = rng.choices(REGIONS, _REGION_WEIGHTS)[0]
            semestriel = rng.random() < 0.3
            changes = rng.random() < 0.1
        caisse = f"{'PL' if categorie == 'PROFESSION_LIBERALE' else 'AC'}-{region}"
        born = rng.randint(1955, 1993)
        if forced is not None or rng.random() < 0.7:  # in activity before 2016
            debut = date(rng.randint(2003, 2015), rng.randint(1, 12), 1)
        else:
            debut = date(rng.choice(YEARS), rng.randint(1, 12), rng.choice((1, 1, 15)))
        fin = None
        if forced is None and rng.random() < 0.08:
            fin = date(rng.choice((2017, 2018)), rng.randint(1, 12), 1) - timedelta(days=1)
            if fin < debut + timedelta(days=90):
                fin = None
        base = rng.lognormvariate(10.4, 0.55)  # median about 33,000 €
        revenus = {
            y: int(min(max(base * rng.uniform(0.85, 1.2), 6_000), 250_000)) // 100 * 10_000
            for y in YEARS
        }
        mode = "OFFICE" if rng.random() < 0.2 else "CHOIX"
        person = _Person(
            index,
            self.new_nir(female, born, rng.randint(1, 12)),
            female,
            categorie,
            caisse,
            organisme,
            mode,
            debut,
            fin,
            semestriel,
            revenus,
        )
        if changes:
            weights = _PL_ORGANISMS if categorie == "PROFESSION_LIBERALE" else _AC_ORGANISMS
            others = [o for o in weights if o != organisme]
            when = date(rng.choice((2016, 2017, 2017, 2018)), rng.choice((4, 7, 10)), 1)
            if when > debut + timedelta(days=60) and (fin is None or when < fin):
                person.change = (when, rng.choice(others))
        person.late = index == _LATE or (forced is None and rng.random() < 0.03)
        self.people.append(person)
        for year in YEARS:
            self.add_contributions(person, year)

    def add_contributions(self, person: _Person, year: int) -> None:
        active = person.actif(date(year, 1, 1), date(year, 12, 31))
        if active is None:
            return
        start, end = active
        total = annual_contribution(person.revenus[year - 1 if year > 2016 else 2016], year)
        total = _div(total * _days(start, end), _days(date(year, 1, 1), date(year, 12, 31)))
        periods = [(start, end)]
        middle = date(year, 7, 1)
        if person.semestriel and start < middle <= end:
            periods = [(start, middle - timedelta(days=1)), (middle, end)]
        remaining = total
        for n, (debut, fin) in enumerate(periods):
            due = (
                remaining
                if n == len(periods) - 1
                else _div(total * _days(debut, fin), _days(start, end))
            )
            remaining -= due
            if due > 0:
                self.add_contribution(person, year, debut, fin, due)

    def add_contribution(
        self, person: _Person, year: int, debut: date, fin: date, due: int
    ) -> None:
        rng = self.rng
        cotisation_id = self.t(self.next_id("COT", 6, year))
        exigible = debut + timedelta(days=35)
        parks = person.late and person.categorie == "PROFESSION_LIBERALE" and year == 2017
        payload = {
            "cotisation_id": cotisation_id,
            "nir": person.nir,
            "categorie": person.categorie,
            "caisse_de_base": person.caisse,
            "periode": {"debut": debut.isoformat(), "fin": fin.isoformat()},
            "montant_cents": due,
            "exigible_le": exigible.isoformat(),
        }
        source = f"caisse-de-base/{person.caisse}"
        doc = self.envelope("CotisationDue", payload, debut, source, cotisation_id)
        self.add(
            debut,
            self.message(
                COTISATIONS, person.nir, doc, subject=self.local(cotisation_id), parks=parks
            ),
        )
        pattern = rng.choices(list(_PATTERNS), list(_PATTERNS.values()))[0]
        payments: list[int] = []
        if pattern in ("FULL", "PAID_THEN_NOTICE"):
            payments = [due]
        elif pattern == "TWO_PARTS":
            first = max(1, min(due - 1, due * rng.randint(30, 70) // 100))
            payments = [first, due - first] if due > 1 else [due]
        elif pattern == "EXCESS":
            payments = [due + rng.choice((5_000, 10_000, 12_000, 25_000, due // 10 + 1))]
        elif pattern == "PARTIAL_UNPAID" and due > 1:
            payments = [max(1, due * rng.randint(20, 70) // 100)]
        recu = exigible + timedelta(days=rng.randint(-25, 20))
        for amount in payments:
            paiement_id = self.t(self.next_id("PAY", 7))
            p = {
                "paiement_id": paiement_id,
                "cotisation_id": cotisation_id,
                "nir": person.nir,
                "montant_cents": amount,
                "recu_le": recu.isoformat(),
            }
            doc = self.envelope("PaiementRecu", p, recu, source, cotisation_id)
            self.add(
                recu,
                self.message(
                    COTISATIONS, person.nir, doc, subject=self.local(paiement_id), parks=parks
                ),
            )
            recu += timedelta(days=rng.randint(20, 40))
        if pattern in ("PARTIAL_UNPAID", "UNPAID", "PAID_THEN_NOTICE"):
            paid = sum(payments) if pattern == "PARTIAL_UNPAID" else 0
            constatee = max(
                exigible + timedelta(days=rng.randint(30, 60)), recu + timedelta(days=1)
            )
            i = {
                "cotisation_id": cotisation_id,
                "nir": person.nir,
                "restant_du_cents": max(1, due - paid),
                "constatee_le": constatee.isoformat(),
            }
            doc = self.envelope("CotisationImpayee", i, constatee, source, cotisation_id)
            self.add(
                constatee,
                self.message(
                    COTISATIONS,
                    person.nir,
                    doc,
                    subject=f"impayé {self.local(cotisation_id)}",
                    parks=parks,
                ),
            )

    def local(self, business_id: str) -> str:
        return business_id.removeprefix(f"{self.tag}-")

    # -- benefits ---------------------------------------------------------------------
    def add_benefits(self, count: int) -> None:
        rng = self.rng
        late = [p for p in self.people if p.late]
        for n in range(count):
            if n < len(_COMBOS):
                categorie, nature = _COMBOS[n]
                person = self.pick_person(categorie, nature)
            elif n - len(_COMBOS) < len(late):  # the late affiliations govern benefits too
                person = late[n - len(_COMBOS)]
                nature = "IJ_MATERNITE" if person.female else "IJ_PATERNITE"
            else:
                categorie = rng.choices(CATEGORIES, (45, 28, 27))[0]
                natures = _NATURES_OF[categorie]
                nature = rng.choices(natures, [_NATURE_WEIGHTS[x] for x in natures])[0]
                person = self.pick_person(categorie, nature)
            if person is not None:
                self.add_benefit(person, nature)

    def pick_person(self, categorie: str, nature: str) -> _Person | None:
        candidates = self.by_category.get((categorie, nature in _FEMALE, nature in _MALE))
        if candidates is None:
            candidates = [
                p
                for p in self.people
                if p.categorie == categorie
                and (nature not in _FEMALE or p.female)
                and (nature not in _MALE or not p.female)
            ]
            self.by_category[(categorie, nature in _FEMALE, nature in _MALE)] = candidates
        return self.rng.choice(candidates) if candidates else None

    def add_benefit(self, person: _Person, nature: str) -> None:
        rng = self.rng
        year = rng.choices(YEARS, (15, 45, 40))[0]
        active = person.actif(date(year, 1, 1), date(year, 12, 31)) or person.actif(
            date(2016, 1, 1), date(2018, 12, 31)
        )
        if active is None:
            return
        start, end = active
        fait = start + timedelta(days=rng.randint(0, max(0, (end - start).days)))
        year = fait.year
        periode: dict[str, str] | None = None
        if nature == "IJ_MALADIE":
            days = rng.choice((4, 5, 7, 8, 10, 12, 15, 15, 21, 30, 45, 60, 90))
            montant = ij_maladie(person.revenus[year], year) * (days - IJ_CARENCE_DAYS)
        elif nature == "IJ_MATERNITE":
            days = rng.choices((44, 59, 74), (70, 15, 15))[0]
            montant = ij_forfaitaire(year) * days
        elif nature == "IJ_PATERNITE":
            days = PATERNITE_DAYS
            montant = ij_forfaitaire(year) * days
        else:
            days, montant = 0, PMSS[year]
        if days:
            periode = {
                "debut": fait.isoformat(),
                "fin": (fait + timedelta(days=days - 1)).isoformat(),
            }
        prestation_id = self.t(self.next_id("PRE", 6, year))
        payload = {
            "prestation_id": prestation_id,
            "nir": person.nir,
            "categorie": person.categorie,
            "caisse_de_base": person.caisse,
            "nature": nature,
            "fait_generateur_le": fait.isoformat(),
            "periode": periode,
            "montant_cents": montant,
        }
        declared = fait + timedelta(days=rng.randint(2, 20))
        doc = self.envelope(
            "PrestationEspecesDue",
            payload,
            declared,
            f"caisse-de-base/{person.caisse}",
            prestation_id,
        )
        self.add(
            declared,
            self.message(
                PRESTATIONS,
                person.nir,
                doc,
                subject=self.local(prestation_id),
                parks=person.late and year >= 2017,
            ),
        )

    # -- disorder, duplicates, breaches -----------------------------------------------
    def add_out_of_order_payments(self) -> None:
        """A few payments published just before their contribution (same key, so they
        reach the service first): parked until the contribution is known."""
        dues = {
            e.message.document()["payload"]["cotisation_id"]: e
            for e in self.feed
            if e.message.event_type == "CotisationDue" and not e.message.parks
        }
        payments = [
            e for e in self.feed if e.message.event_type == "PaiementRecu" and not e.message.parks
        ]
        chosen = [
            e
            for e in payments
            if e.message.document()["payload"]["cotisation_id"] in dues and self.rng.random() < 0.02
        ]
        if not chosen and payments:  # at least one, on a 2017 contribution when possible
            in_2017 = [
                e
                for e in payments
                if e.message.document()["payload"]["cotisation_id"].startswith(self.t("COT-2017-"))
            ]
            chosen = [(in_2017 or payments)[0]]
        for entry in chosen:
            due = dues[entry.message.document()["payload"]["cotisation_id"]]
            entry.when, entry.order = due.when, due.order - len(self.feed) - 1
            entry.message = replace(entry.message, parks=True)

    def add_duplicates_and_conflicts(self) -> None:
        rng = self.rng
        plain = [e for e in self.feed if e.message.kind == INPUT and not e.message.parks]
        n_dup = max(3, len(plain) // 100)
        for entry in rng.sample(plain, min(n_dup, len(plain))):
            copy = replace(entry.message, kind=DUPLICATE)
            self.add(entry.when + timedelta(days=rng.randint(0, 3)), copy)
        # a registry fact delivered twice
        fact = self.registry[rng.randrange(len(self.registry))]
        self.registry.append(replace(fact, kind=DUPLICATE))
        dues = [e for e in plain if e.message.event_type == "CotisationDue"]
        benefits = [e for e in plain if e.message.event_type == "PrestationEspecesDue"]
        payments = [e for e in plain if e.message.event_type == "PaiementRecu"]
        for source, kind in (
            (dues, RESEND),
            (payments, RESEND),
            (dues, CONFLICT),
            (benefits, CONFLICT),
        ):
            if not source:
                continue
            entry = rng.choice(source)
            doc = entry.message.document()
            payload = dict(doc["payload"])
            if kind == CONFLICT:
                payload["montant_cents"] += 10_000
            again = self.envelope(
                doc["event_type"],
                payload,
                entry.when + timedelta(days=5),
                doc["source"],
                doc["correlation_id"],
            )
            key = entry.message.key.decode() if entry.message.key else ""
            self.add(
                entry.when + timedelta(days=5),
                self.message(
                    entry.message.topic, key, again, kind=kind, subject=entry.message.subject
                ),
            )

    def add_breaches(self) -> None:
        """Messages that break contract v1 (each rejected by the services of its topic)."""
        rng = self.rng
        dues = [e for e in self.feed if e.message.event_type == "CotisationDue"]
        benefits = [e for e in self.feed if e.message.event_type == "PrestationEspecesDue"]
        payments = [e for e in self.feed if e.message.event_type == "PaiementRecu"]
        for _ in range(1 + self.size // 5000):
            for source, breach in (
                (payments, "bad JSON"),
                (dues, "unknown event_type"),
                (benefits, "invalid NIR key"),
                (payments, "negative amount"),
                (benefits, "missing field"),
            ):
                entry = rng.choice(source)
                self.add(entry.when + timedelta(days=1), self.breach(entry.message, breach))
        people = [p for p in self.people if not p.late]
        person = rng.choice(people)
        payload = {
            "nir": person.nir,
            "organisme_id": self.t(person.organisme),
            "mode": "AUTOMATIQUE",
            "effet_du": person.debut.isoformat(),
        }
        doc = self.envelope(
            "AffiliationEnregistree", payload, person.debut, f"caisse-de-base/{person.caisse}", None
        )
        self.registry.append(
            self.message(
                REFERENTIEL,
                person.nir,
                doc,
                phase=1,
                kind=BREACH,
                subject="affiliation",
                note="unknown mode",
            )
        )

    def breach(self, original: Message, what: str) -> Message:
        doc = original.document()
        copy = self.envelope(
            doc["event_type"],
            dict(doc["payload"]),
            date.fromisoformat(doc["occurred_at"][:10]),
            doc["source"],
            doc["correlation_id"],
        )
        payload = copy["payload"]
        if what == "unknown event_type":
            copy["event_type"] = "CotisationAnnulee"
        elif what == "invalid NIR key":
            key = int(payload["nir"][13:])
            payload["nir"] = payload["nir"][:13] + f"{key % 97 + 1:02d}"
        elif what == "negative amount":
            payload["montant_cents"] = -payload["montant_cents"]
        elif what == "missing field":
            del payload["caisse_de_base"]
        value = self.encode(copy)
        if what == "bad JSON":
            value = value[: len(value) * 2 // 3]
        return Message(
            original.topic,
            original.key,
            value,
            2,
            BREACH,
            copy["event_id"],
            copy["event_type"],
            original.subject,
            False,
            what,
        )


_NATURES_OF: Final = {
    "PROFESSION_LIBERALE": ("IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL", "IJ_PATERNITE"),
    "ARTISAN": NATURES,
    "COMMERCANT": NATURES,
}
_NATURE_WEIGHTS: Final = {
    "IJ_MALADIE": 70,
    "IJ_MATERNITE": 12,
    "ALLOCATION_REPOS_MATERNEL": 12,
    "IJ_PATERNITE": 8,
}
_FEMALE: Final = frozenset({"IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL"})
_MALE: Final = frozenset({"IJ_PATERNITE"})
_COMBOS: Final = tuple((c, n) for c in CATEGORIES for n in _NATURES_OF[c])
"""Every plausible (category, nature): each is generated at least once."""

_LATE: Final = 3
"""The forced person whose affiliation is published after its contributions and benefits."""
_FORCED: Final = (  # categorie, organism, female, region, semestriel, changes organism
    ("PROFESSION_LIBERALE", "OC-MUT-01", True, "IDF", False, False),
    ("ARTISAN", "OC-MUT-02", True, "ARA", False, False),
    ("PROFESSION_LIBERALE", "OC-MUT-03", False, "PACA", True, False),
    ("PROFESSION_LIBERALE", "OC-SA-01", False, "IDF", False, False),
    ("PROFESSION_LIBERALE", "OC-SA-02", True, "IDF", True, False),
    ("COMMERCANT", "OC-GSA-01", True, "NAQ", False, False),
    ("PROFESSION_LIBERALE", "OC-GSA-02", True, "ARA", False, True),
    ("ARTISAN", "OC-OSS-01", False, "IDF", False, False),
    ("COMMERCANT", "OC-OSS-02", False, "HDF", False, False),
    ("PROFESSION_LIBERALE", "OC-OSS-01", True, "IDF", False, False),
)
