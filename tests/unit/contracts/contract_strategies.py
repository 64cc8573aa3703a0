"""Hypothesis strategies of contract v1 messages, shared by the property tests of this
directory (imported by them as `contract_strategies`)."""

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, get_args

from hypothesis import strategies as st
from pydantic import BaseModel

from contracts import (
    CENTS_MAX,
    SUM_MAX,
    AffiliationRetenue,
    Categorie,
    ConventionRetenue,
    FaitsRetenus,
    FormeJuridique,
    ModeAffiliation,
    Motif,
    Nature,
    ObjetConvention,
    OrganismeRetenu,
    Periode,
    Recouvreur,
    ResultatEncaissement,
    ResultatVersement,
    make_nir,
    topics,
)

_VISIBLE = st.characters(exclude_categories=("Cs", "Cc"))
texts = st.text(_VISIBLE, min_size=1, max_size=12).filter(str.strip)
codes = texts.filter(lambda s: s == s.strip())  # short: the limits have tests of their own
nirs = st.from_regex(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}", fullmatch=True).map(make_nir)
dates = st.dates()
cents = st.integers(1, CENTS_MAX)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(datetime(1900, 1, 1), datetime(2100, 12, 31), timezones=offsets)


def _ordered(model: type[BaseModel], start: str, end: str) -> st.SearchStrategy[Any]:
    """Build ``model`` from its field strategies, keeping ``end`` >= ``start`` when set."""
    return (
        st.fixed_dictionaries({name: _field(model, name) for name in model.model_fields})
        .filter(lambda d: d[end] is None or d[end] >= d[start])
        .map(lambda d: model(**d))
    )


periodes = st.tuples(dates, dates).map(lambda p: Periode(debut=min(p), fin=max(p)))
faits = st.builds(
    FaitsRetenus,
    affiliation=st.none() | st.builds(AffiliationRetenue, organisme_id=codes, effet_du=dates),
    organisme=st.none() | st.builds(OrganismeRetenu, organisme_id=codes),
    convention=st.none() | st.deferred(lambda: _ordered(ConventionRetenue, "effet_du", "effet_au")),
)


def _outcome(model: type[BaseModel], delegated: str, other: str) -> st.SearchStrategy[Any]:
    """An outcome a revision compares: delegated (organism, convention) or not (a motif)."""
    extra = {"recouvreur": st.none()} if "recouvreur" in model.model_fields else {}
    return st.builds(
        model,
        event_type=st.just(delegated),
        organisme_id=codes,
        convention_id=codes,
        motif=st.none(),
        **extra,
    ) | st.builds(
        model,
        event_type=st.just(other),
        organisme_id=st.none(),
        convention_id=st.none(),
        motif=st.sampled_from(Motif),
        **({"recouvreur": st.none() | st.sampled_from(Recouvreur)} if extra else {}),
    )


OUTCOMES: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    ResultatEncaissement: _outcome(
        ResultatEncaissement, "EncaissementDelegue", "EncaissementNonDelegue"
    ),
    ResultatVersement: _outcome(ResultatVersement, "VersementDelegue", "VersementDirect"),
}
BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "nir": nirs,
    "nom": texts,
    "caisse_de_base": codes,
    "caisses_de_base": st.lists(codes, min_size=1, max_size=3).map(tuple),
    "base_legale": st.lists(texts, min_size=1, max_size=3).map(tuple),
    "regles_version": codes,
    "periode": periodes,
    "faits_retenus": faits,
    "solde_restant_cents": st.integers(-SUM_MAX, SUM_MAX),
    "forme_juridique": st.sampled_from(FormeJuridique),
    "objet": st.sampled_from(ObjetConvention),
    "mode": st.sampled_from(ModeAffiliation),
    "categorie": st.sampled_from(Categorie),
    "nature": st.sampled_from(Nature),
    "motif": st.sampled_from(Motif),
    "recouvreur": st.sampled_from(Recouvreur),
    "decision_revisee_id": st.uuids(),
    "deja_encaisse_cents": st.integers(0, SUM_MAX),
    "contentieux_transfere": st.booleans(),
}


def _field(model: type[BaseModel], name: str) -> st.SearchStrategy[Any]:
    annotation = model.model_fields[name].annotation
    if annotation in OUTCOMES:
        return OUTCOMES[annotation]
    if name in BY_NAME:
        strategy = BY_NAME[name]
    elif name.endswith("_cents"):
        strategy = cents
    elif name.endswith("_id"):
        strategy = codes
    else:  # every other field of the contract is a date: effet_du, recu_le, ...
        strategy = dates
    nullable = type(None) in get_args(annotation)
    return st.none() | strategy if nullable else strategy


def _revision(fields: dict[str, Any]) -> dict[str, Any]:
    """A revision's money and litigation stay 0 / false unless an organism leaves."""
    avant, apres = fields["avant"], fields["apres"]
    if "deja_encaisse_cents" in fields and not (
        avant.delegated and avant.organisme_id != apres.organisme_id
    ):
        return fields | {"deja_encaisse_cents": 0, "contentieux_transfere": False}
    return fields


def payloads(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    if "effet_au" in model.model_fields and "effet_du" in model.model_fields:
        return _ordered(model, "effet_du", "effet_au")
    fields = st.fixed_dictionaries({n: _field(model, n) for n in model.model_fields})
    if "avant" in model.model_fields:  # a revision: a change, tenure only when one leaves
        fields = fields.filter(lambda d: d["avant"] != d["apres"]).map(_revision)
    return fields.map(lambda d: model(**d))


def events(classes: Mapping[str, type[BaseModel]]) -> st.SearchStrategy[Any]:
    def one(cls: type[BaseModel]) -> st.SearchStrategy[Any]:
        payload_model = cls.model_fields["payload"].annotation
        assert isinstance(payload_model, type) and issubclass(payload_model, BaseModel)
        return st.builds(
            cls,
            event_id=st.uuids(),
            occurred_at=instants,
            source=codes,
            correlation_id=st.none() | codes,
            causation_id=st.none() | codes,
            payload=payloads(payload_model),
        )

    return st.one_of([one(cls) for cls in classes.values()])


ROLE = {t: s for s in (topics.REFERENTIEL_EVENT_TYPES, topics.COTISATIONS_EVENT_TYPES,
                       topics.PRESTATIONS_EVENT_TYPES) for t in s}  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
