"""Phase 2 of the scenario, delivery faults: payments published before their contribution,
duplicates (same event id), identical resends and conflicting resends (new event id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from services.tools.demo.model import CONFLICT, DUPLICATE, INPUT, RESEND

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder, Entry


def of_type(entries: Iterable[Entry], event_type: str) -> list[Entry]:
    """The entries whose message is of `event_type`, in order."""
    return [e for e in entries if e.message.event_type == event_type]


def _cotisation_id(entry: Entry) -> str:
    return str(entry.message.document()["payload"]["cotisation_id"])


def add_out_of_order_payments(b: Builder) -> None:
    """A few payments published just before their contribution (same key, so they
    reach the service first): parked until the contribution is known."""
    on_time = [e for e in b.feed if not e.message.parks]
    dues = {_cotisation_id(e): e for e in of_type(on_time, "CotisationDue")}
    payments = of_type(on_time, "PaiementRecu")
    chosen = [e for e in payments if _cotisation_id(e) in dues and b.rng.random() < 0.02]
    if not chosen and payments:  # at least one, on a 2017 contribution when possible
        in_2017 = [e for e in payments if _cotisation_id(e).startswith(b.t("COT-2017-"))]
        chosen = [(in_2017 or payments)[0]]
    for entry in chosen:
        due = dues[_cotisation_id(entry)]
        entry.when, entry.order = due.when, due.order - len(b.feed) - 1
        entry.message = replace(entry.message, parks=True)


def add_duplicates_and_conflicts(b: Builder) -> None:
    """Inputs delivered twice, a registry fact delivered twice, and resends of a few
    business ids (identical, or with another amount)."""
    rng = b.rng
    plain = [e for e in b.feed if e.message.kind == INPUT and not e.message.parks]
    n_dup = max(3, len(plain) // 100)
    for entry in rng.sample(plain, min(n_dup, len(plain))):
        copy = replace(entry.message, kind=DUPLICATE)
        b.add(entry.when + timedelta(days=rng.randint(0, 3)), copy)
    fact = b.registry[rng.randrange(len(b.registry))]
    b.registry.append(replace(fact, kind=DUPLICATE))
    dues = of_type(plain, "CotisationDue")
    benefits = of_type(plain, "PrestationEspecesDue")
    payments = of_type(plain, "PaiementRecu")
    for source, kind in (
        (dues, RESEND),
        (payments, RESEND),
        (dues, CONFLICT),
        (benefits, CONFLICT),
    ):
        if source:
            _resend(b, rng.choice(source), kind)


def _resend(b: Builder, entry: Entry, kind: str) -> None:
    """`entry`'s business id again, 5 days later, under a new event id."""
    doc = entry.message.document()
    payload = dict(doc["payload"])
    if kind == CONFLICT:
        payload["montant_cents"] += 10_000
    when = entry.when + timedelta(days=5)
    again = b.again(doc, payload, when)
    message = entry.message
    key = message.key.decode() if message.key else ""
    b.add(when, b.message(message.topic, key, again, kind=kind, subject=message.subject))
