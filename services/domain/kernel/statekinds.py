"""The state entries both services keep by key: the registry as recorded, and the inputs
waiting for a decision. Each kind says how it is kept as JSON (`Kind`), and `registry_demand`
and `parked_demand` what a batch must load to read it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.domain.kernel.parking import Waiting, waits_for_affiliation
from services.domain.registry.registry import (
    Affiliation,
    ConventionFacts,
    Organisme,
    concluded_of,
)
from services.domain.state import Demand, Doc, Entry, Kind, Row

FOLD_VERSION = 2  # 2: revision tasks, decisions' positions, conventions as their payload
"""The version of what the views fold into the state: bump it whenever a fold changes (a
field kept, how it is counted), so that a state written by an earlier version is folded
again from the events instead of being trusted."""

ORGANISME = "organisme"
CONVENTION = "convention"
CONVENTIONS_OF = "conventions_of"
AFFILIATIONS = "affiliations"
AFFILIATED = "affiliated"
SUBJECTS_OF = "subjects_of"
PARKED = "parked"


def _d(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _doc(doc: Doc) -> dict[str, Any]:
    assert isinstance(doc, dict), "an entry of this kind is a JSON object"
    return doc


def _items(doc: Doc) -> list[Any]:
    assert isinstance(doc, list), "an entry of this kind is a JSON array"
    return doc


def _organisme(o: Organisme) -> Entry:
    return Entry({"organisme_id": o.organisme_id, "nom": o.nom, "forme": o.forme_juridique})


def _from_organisme(entry: Entry) -> Organisme:
    d = _doc(entry.doc)
    return Organisme(d["organisme_id"], d["nom"], d["forme"])


def _convention(f: ConventionFacts) -> Entry:
    """Its conclusion kept as a `ConventionConclue` payload (what `concluded_of` reads)."""
    c = f.concluded
    concluded = (
        None
        if c is None
        else {
            "convention_id": c.convention_id,
            "organisme_id": c.organisme_id,
            "objet": c.objet,
            "caisses_de_base": sorted(c.caisses_de_base),
            "effet_du": c.effet_du.isoformat(),
            "effet_au": _iso(c.effet_au),
        }
    )
    return Entry({"concluded": concluded, "terminated_at": _iso(f.terminated_at)})


def _from_convention(entry: Entry) -> ConventionFacts:
    d = _doc(entry.doc)
    concluded = None if d["concluded"] is None else concluded_of(d["concluded"])
    return ConventionFacts(concluded, _d(d["terminated_at"]))


def _affiliations(history: list[Affiliation]) -> Entry:
    return Entry(
        [
            {
                "organisme_id": a.organisme_id,
                "mode": a.mode,
                "du": a.effet_du.isoformat(),
                "seq": a.sequence,
                "nir": a.nir,
            }
            for a in history
        ]
    )


def _from_affiliations(entry: Entry) -> list[Affiliation]:
    return [
        Affiliation(a["nir"], a["organisme_id"], a["mode"], date.fromisoformat(a["du"]), a["seq"])
        for a in _items(entry.doc)
    ]


def _parked(w: Waiting) -> Entry:
    doc = {
        "event_type": w.event_type,
        "payload": w.payload,
        "metadata": w.metadata,
        "motif": w.motif,
        "since": w.since,
    }
    # recorded and not decided yet (only between an input and its decision): no queue
    return Entry(doc, tag=w.waits_for or None, ordinal=w.at)


def _from_parked(entry: Entry) -> Waiting:
    d = _doc(entry.doc)
    return Waiting(
        d["event_type"],
        d["payload"],
        d["metadata"],
        waits_for=entry.tag or "",
        motif=d["motif"],
        at=entry.ordinal,
        since=d["since"],
    )


def _ids(ids: list[str]) -> Entry:
    return Entry(list(ids))


def _from_ids(entry: Entry) -> list[str]:
    return list(_items(entry.doc))


REGISTRY_KINDS: tuple[Kind[Any], ...] = (
    Kind(ORGANISME, _organisme, _from_organisme),
    Kind(CONVENTION, _convention, _from_convention),
    Kind(CONVENTIONS_OF, _ids, _from_ids),
    Kind(AFFILIATIONS, _affiliations, _from_affiliations),
)
PARKED_KIND: Kind[Waiting] = Kind(PARKED, _parked, _from_parked)


def field_of(payload: Any, name: str) -> Any:
    """A payload's field, whether it is a contract model or a stored JSON object."""
    if isinstance(payload, Mapping):
        return payload.get(name)
    return getattr(payload, name, None)


def registry_demand(demand: Demand, event_type: str, payload: Any) -> None:
    """What reading the registry for an input (or folding a fact) that names these ids
    needs: the person's affiliations and the inputs parked on them, the organism and the
    list of its conventions, the convention."""
    nir = field_of(payload, "nir")
    if isinstance(nir, str):
        demand.key(AFFILIATIONS, nir)
        demand.tag(PARKED, waits_for_affiliation(nir))
    organisme_id = field_of(payload, "organisme_id")
    if isinstance(organisme_id, str):
        demand.key(ORGANISME, organisme_id)
        demand.key(CONVENTIONS_OF, organisme_id)
    convention_id = field_of(payload, "convention_id")
    if isinstance(convention_id, str):
        demand.key(CONVENTION, convention_id)
    if event_type == "OrganismeDeclare":  # it may unblock anyone waiting for an affiliation
        demand.prefix(PARKED, waits_for_affiliation(""))


def registry_more(row: Row, demand: Demand) -> None:
    """What a loaded registry entry leads to: an affiliation's organism and its conventions,
    an organism's conventions, a convention's organism (a conclusion sent again may move it)."""
    if row.kind == AFFILIATIONS:
        for a in _items(row.entry.doc):
            demand.key(ORGANISME, a["organisme_id"])
            demand.key(CONVENTIONS_OF, a["organisme_id"])
    elif row.kind == CONVENTIONS_OF:
        for convention_id in _items(row.entry.doc):
            demand.key(CONVENTION, convention_id)
    elif row.kind == CONVENTION:
        concluded = _doc(row.entry.doc)["concluded"]
        if concluded is not None:
            demand.key(CONVENTIONS_OF, concluded["organisme_id"])
    elif row.kind == AFFILIATED:  # a person an organism's fact may concern: their subjects
        demand.tag(SUBJECTS_OF, _items(row.entry.doc)[1])


def revision_demand(demand: Demand, event_type: str, payload: Any) -> None:
    """Where the decisions a registry fact revises at once are found: its person's subjects
    (an affiliation). A fact about an organism revises its people in steps, each loading
    its own span of them (`kernel.tasks`)."""
    if event_type == "AffiliationEnregistree":
        demand.tag(SUBJECTS_OF, field_of(payload, "nir"))
