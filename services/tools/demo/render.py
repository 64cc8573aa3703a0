"""The summary of a run as text, as `mandat run` prints it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from services.tools.demo.model import BENEFITS, COLLECTION, SERVICES

if TYPE_CHECKING:
    from services.tools.demo.summary import Summary, Tally

TITLES: Final = {COLLECTION: "collection (alinéa 1)", BENEFITS: "benefits (alinéa 2)"}
_KINDS: Final = (
    ("input", "inputs"),
    ("fact", "registry facts"),
    ("breach", "contract breaches"),
    ("conflict", "conflicting resends"),
    ("duplicate", "duplicates"),
    ("resend", "identical resends"),
)
_WITH_AMOUNT: Final = frozenset(
    {
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
        "ContentieuxDelegue",
        "VersementDelegue",
        "VersementDirect",
        "EncaissementRevise",
    }
)

_NONE: Final = "(not delegated)"
Add = Callable[[str], None]


def euros(cents: int) -> str:
    """Integer cents as euros with 2 decimals: 195000 -> '1,950.00 €'."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d} €"


def render(summary: Summary) -> str:
    """`summary` as text: decisions, money by organism and caisse, parked, rejected,
    completeness, and pace."""
    lines: list[str] = []
    add = lines.append
    s = summary
    p = s.published
    kinds = ", ".join(f"{p.get(k, 0):,} {label}" for k, label in _KINDS)
    add(
        f"Scenario: size {s.size:,}, seed {s.seed} — {p['messages']:,} messages published ({kinds})"
    )
    _decisions(add, s)
    _money(add, s)
    _revisions(add, s)
    _parked(add, s)
    _rejected(add, s)
    _completeness(add, s)
    add("")
    add(
        f"Elapsed {s.elapsed_s:.1f} s: {p['messages']:,} messages in, "
        f"{s.messages_out:,} decisions and rejections out — {s.rate:,.0f} "
        f"messages/s"
    )
    return "\n".join(lines)


def _decisions(add: Add, s: Summary) -> None:
    for service in SERVICES:
        add("")
        add(f"Decisions of {TITLES[service]}, by type and motif")
        table = s.decisions.get(service, {})
        for (event_type, motif), (n, cents) in sorted(table.items()):
            amount = euros(cents) if event_type in _WITH_AMOUNT else ""
            add(f"  {event_type:<27} {motif or '':<26} {n:>8,} {amount:>18}")
        _none_if_empty(add, table)


def _money(add: Add, s: Summary) -> None:
    by_organism = (  # organism tables get an empty caisse column, to share the layout
        "Contributions delegated, by organism (EncaissementDelegue)",
        {(o, ""): v for o, v in s.delegated.items()},
    )
    litigation = (
        "Litigation delegated, by organism (ContentieuxDelegue, amount still due)",
        {(o, ""): v for o, v in s.contentieux.items()},
    )
    reversements = (
        "Reversements owed: money each organism holds for each caisse de base "
        "(PaiementEncaissePourCompte)",
        s.reversements,
    )
    on_behalf = (
        "Benefits paid by organisms on behalf of each caisse de base (VersementDelegue)",
        s.versements_delegues,
    )
    for title, table in (by_organism, reversements, litigation, on_behalf):
        _pairs(add, s, title, table)
    add("")
    add("Benefits paid directly by the caisse de base (VersementDirect)")
    for caisse, (n, cents) in sorted(s.versements_directs.items()):
        add(f"  {caisse:<10} {n:>8,} {euros(cents):>18}")
    _none_if_empty(add, s.versements_directs)


def _revisions(add: Add, s: Summary) -> None:
    """Revisions by service, who moved from which organism to which, and what each
    organism leaving owes the caisses (deja_encaisse_cents)."""
    add("")
    add("Revisions (late registry facts), and the money moved (deja_encaisse_cents)")
    for service in SERVICES:
        n, cents = s.revisions.get(service, [0, 0])
        moved = f"  {euros(cents)} moved" if service == COLLECTION else ""
        add(f"  {service:<11} {n:>6,} revisions{moved}")
    for (service, before, after), n in s.moves.items():
        moved = f"{before or _NONE:<16} -> {after or _NONE:<16}"
        add(f"    {service:<11} {moved} {n:>6,}")
    _pairs(
        add,
        s,
        "Owed by organisms leaving a contribution (EncaissementRevise: collected for the caisse)",
        {(o, ""): v for o, v in s.owed.items()},
    )


def _pairs(add: Add, s: Summary, title: str, table: dict[tuple[str, str], Tally]) -> None:
    """A table of [count, cents] by organism (with its name) and caisse de base."""
    add("")
    add(title)
    for (organism, caisse), (n, cents) in sorted(table.items()):
        name = s.organisms.get(organism, "")
        label = f"{organism:<10} {name[:48]:<48}"
        add(f"  {label} {caisse:<8} {n:>7,} {euros(cents):>18}")
    _none_if_empty(add, table)


def _none_if_empty(add: Add, table: object) -> None:
    if not table:
        add("  (none)")


def _parked(add: Add, s: Summary) -> None:
    add("")
    add("Parked (DecisionEnAttente) on their way, then decided")
    for service in SERVICES:
        motifs = s.parked.get(service, {})
        detail = ", ".join(f"{m} {n:,}" for m, n in sorted(motifs.items())) or "none"
        add(
            f"  {service:<11} {sum(motifs.values()):>6,}  ({detail}); still parked: "
            f"{s.still_parked.get(service, 0):,}"
        )


def _rejected(add: Add, s: Summary) -> None:
    add("")
    add("Rejected (to the rejection topics, untouched, reason in headers)")
    for service in SERVICES:
        reasons = s.rejected.get(service, {})
        add(f"  {service:<11} {sum(reasons.values()):>6,}")
        for reason, n in sorted(reasons.items()):
            add(f"      {n:>4,}  {reason}")


def _completeness(add: Add, s: Summary) -> None:
    add("")
    add("Completeness")
    for service in SERVICES:
        e = s.expected[service]
        got_rejected = sum(s.rejected.get(service, {}).values())
        add(
            f"  {service:<11} {s.decided.get(service, 0):>6,}/{e['decided']:,} inputs "
            f"decided, {got_rejected:,}/{e['rejected']:,} rejections, parked "
            f"{sum(s.parked.get(service, {}).values()):,}/{e['parked']:,} as planned"
        )
    for text in s.notes:
        add(f"  note: {text}")
    for text in s.unexpected[:10]:
        add(f"  unexpected: {text}")
    if not s.missing:
        add("  every input got its decision or its rejection")
        return
    add(f"  MISSING ({len(s.missing):,}):")
    for text in s.missing[:15]:
        add(f"    {text}")
    if len(s.missing) > 15:
        add(f"    ... and {len(s.missing) - 15:,} more")
