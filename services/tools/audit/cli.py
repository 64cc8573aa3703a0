"""`mandat replay …`, `mandat audit …`, `mandat projections …`: the audit's command line.

Exit codes follow diff(1): 0 all is well (or nothing differs), 1 something does not hold
(a mismatch, a broken chain, a projection that differs, decisions that would change,
nothing recorded about a subject), 2 the command could not run (no database, no store).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.domain import catalog
from services.tools.audit import commands, split, statecmd
from services.tools.audit.options import CommandError

Adder = Callable[[argparse.ArgumentParser], object]
"""Adds options to a subcommand's parser."""


def _instant(text: str, *, end: bool = False) -> datetime:
    """An ISO date or date-time (UTC when naive); a date as an end bound means its end."""
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _common(parser: argparse.ArgumentParser, *, service: bool = True) -> None:
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else .run/endpoints.env)"
    )
    if service:
        parser.add_argument(
            "--service",
            choices=tuple(catalog.SERVICES),
            help="one service's store (default: both)",
        )
    parser.add_argument(
        "--collection-schema",
        help="schema of the collection store (default: settings, MANDAT_COLLECTION_SCHEMA)",
    )
    parser.add_argument(
        "--benefits-schema",
        help="schema of the benefits store (default: settings, MANDAT_BENEFITS_SCHEMA)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _selection(parser: argparse.ArgumentParser, *, subject: bool = True) -> None:
    _positions(parser)
    parser.add_argument(
        "--since",
        type=_instant,
        metavar="DATE",
        help="recorded at or after (ISO date or date-time, UTC)",
    )
    parser.add_argument(
        "--until",
        type=lambda t: _instant(t, end=True),
        metavar="DATE",
        help="recorded up to (a date: that whole day included)",
    )
    if subject:
        parser.add_argument(
            "--subject",
            metavar="ID",
            help="only decisions about a cotisation_id, prestation_id, paiement_id or NIR",
        )


def _show(default: int, what: str) -> Adder:
    """`--show N`: how many `what` the text output prints (`default` of them)."""

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--show",
            type=int,
            default=default,
            metavar="N",
            help=f"{what} printed per service (all with --json)",
        )

    return add


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def _jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="a store in shards: N shards checked at a time, each with its own connections "
        "(default: 1)",
    )


def _subject(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", help="a cotisation_id, prestation_id, paiement_id or NIR")


def _as_of(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--as-of",
        type=lambda text: _instant(text, end=True),
        metavar="TIME",
        help="what the record held at TIME (an ISO date-time; a date: at its end): what had "
        "been decided, and on which facts",
    )
    when.add_argument(
        "--as-of-position", type=int, metavar="N", help="what the record held at position N"
    )


def _positions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-position", type=int, metavar="N", help="first store position")
    parser.add_argument("--to-position", type=int, metavar="N", help="last store position")


def _kafka(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers",
        help="Kafka (default: $KAFKA_BOOTSTRAP_SERVERS, else .run/endpoints.env)",
    )


def _anchors_topic(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--anchors-topic", help="(default: settings, rsi.audit.ancrages.v1)")


def _anchors_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="FILE",
        help="the anchors' public key (PEM; repeatable, e.g. across a key "
        "rotation); checks the store against its signed anchors",
    )
    _anchors_topic(parser)
    _kafka(parser)


def _argument(*names: str, **spec: Any) -> Adder:
    """One argument as data, `parser.add_argument(*names, **spec)`, for `_COMMANDS`."""
    return lambda parser: parser.add_argument(*names, **spec)


@dataclass(frozen=True)
class _Action:
    """A subcommand: its name, its help, what it runs, its options in `--help` order."""

    name: str
    summary: str
    impl: Callable[[argparse.Namespace], Awaitable[int]]
    options: tuple[Adder, ...] = ()


_COMMANDS: tuple[tuple[str, str, tuple[_Action, ...]], ...] = (
    (
        "replay",
        "re-run the rules over the record; republish it",
        (
            _Action(
                "verify",
                "recompute every recorded decision and compare, byte for byte",
                commands.verify,
                (_common, _selection, _show(20, "mismatches"), _jobs),
            ),
            _Action(
                "what-if",
                "the decisions the current rules would take differently",
                commands.what_if,
                (
                    _common,
                    _selection,
                    _argument(
                        "--rules",
                        metavar="MODULE:NAME",
                        help="a candidate RuleSet instead of the current one (needs --service)",
                    ),
                    _show(50, "changes"),
                ),
            ),
            _Action(
                "republish",
                "re-emit stored events to the audit topic, marked as a replay",
                commands.republish_cmd,
                (
                    _common,
                    _selection,
                    _argument(
                        "--topic", help="target topic (default: settings, rsi.audit.replay.v1)"
                    ),
                    _argument(
                        "--include-inputs",
                        action="store_true",
                        help="inputs and registry facts too, not only decisions",
                    ),
                    _argument("--replay-id", help="the replay_id header (default: a new uuid)"),
                    _kafka,
                ),
            ),
        ),
    ),
    (
        "audit",
        "the hash chain, a subject's trail",
        (
            _Action(
                "chain",
                "verify the hash chain; report the first break; "
                "with --public-key, the store against its signed anchors",
                commands.chain,
                (_common, _anchors_options, _jobs),
            ),
            _Action(
                "trail",
                "every input, decision, registry fact relied on, legal basis and "
                "rule-set version about a subject, in order",
                commands.trail_cmd,
                (_subject, _common, _as_of, _jobs),
            ),
            # the trust commands (docs/trust.md)
            _Action(
                "keygen",
                "a new anchor key pair: FILE (private, 0600) and FILE.pub (public)",
                commands.keygen_cmd,
                (_argument("--out", required=True, metavar="FILE"),),
            ),
            _Action(
                "anchor",
                "sign and publish an anchor of each store now",
                commands.anchor_cmd,
                (
                    _common,
                    _argument("--key", required=True, metavar="FILE", help="the private key (PEM)"),
                    _anchors_topic,
                    _kafka,
                ),
            ),
            _Action(
                "prove",
                "a subject's events with Merkle inclusion proofs under the latest signed "
                "anchor (JSON on stdout: `> proof.json`)",
                commands.prove_cmd,
                (
                    _subject,
                    _common,
                    _anchors_options,
                    _argument(
                        "--extends",
                        type=int,
                        metavar="SIZE",
                        help="add a consistency proof from the anchor of this size",
                    ),
                ),
            ),
            _Action(
                "consistency",
                "a consistency proof that the latest anchor (or --to-size) extends "
                "the anchor of --from-size (JSON on stdout, checked by check-proof)",
                commands.consistency_cmd,
                (
                    _common,
                    _anchors_options,
                    _argument("--from-size", type=int, required=True, metavar="SIZE"),
                    _argument("--to-size", type=int, metavar="SIZE"),
                ),
            ),
            _Action(
                "check-proof",
                "verify a proof with the public key alone (no database, no Kafka)",
                commands.check_proof_cmd,
                (
                    _argument("proof", help="the proof file (- for stdin)"),
                    _argument(
                        "--public-key",
                        action="append",
                        required=True,
                        metavar="FILE",
                        help="the anchors' public key (PEM; repeatable)",
                    ),
                    _argument("--json", action="store_true", help="machine-readable output"),
                ),
            ),
        ),
    ),
    (
        "rejections",
        "records the services refused",
        (
            _Action(
                "redrive",
                "submit rejected records again, after a fix (each decided or rejected "
                "again exactly once, with its provenance)",
                commands.redrive_cmd,
                (
                    _common,
                    _argument(
                        "--kind",
                        choices=("processing_error", "contract", "all"),
                        default="processing_error",
                        help="which rejections (default: processing_error, the records a bug "
                        "isolated)",
                    ),
                    _argument(
                        "--id",
                        action="append",
                        default=[],
                        metavar="UUID",
                        help="only this rejection (repeatable)",
                    ),
                    _positions,
                    _argument("--dry-run", action="store_true", help="list, send nothing"),
                    _kafka,
                ),
            ),
        ),
    ),
    (
        "state",
        "the decision state the services read by key",
        (
            _Action(
                "catch-up",
                "fold the events the state does not reflect yet (a store migrated or bulk-loaded)",
                statecmd.catch_up_cmd,
                (
                    _common,
                    _argument(
                        "--from-zero",
                        action="store_true",
                        help="forget the state and fold every event again",
                    ),
                ),
            ),
        ),
    ),
    (
        "store",
        "the store's layout",
        (
            _Action(
                "split",
                "as the database owner, the service stopped: move a store of one sequence into "
                "N shards (its events kept as the archive), verified by replay of each shard",
                split.split_cmd,
                (
                    lambda parser: _common(parser, service=False),
                    _argument("--service", choices=tuple(catalog.SERVICES), required=True),
                    _argument("--shards", type=int, required=True, metavar="N"),
                ),
            ),
        ),
    ),
    (
        "projections",
        "balances folded from the record",
        (
            _Action(
                "rebuild",
                "fold the projections again from position 0 and compare with live",
                commands.rebuild_cmd,
                (
                    _common,
                    _argument(
                        "--repair",
                        action="store_true",
                        help="replace live rows that differ by the rebuilt ones (admin)",
                    ),
                ),
            ),
        ),
    ),
)
"""The commands the audit adds, in order, each with its actions (subcommands)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `replay`, `audit`, `rejections`, `state`, `store` and `projections` to the
    `mandat` command line, as `_COMMANDS` lists them."""
    for name, summary, actions in _COMMANDS:
        group = sub.add_parser(name, help=summary).add_subparsers(dest="action", required=True)
        for action in actions:
            parser = group.add_parser(action.name, help=action.summary)
            for add in action.options:
                add(parser)
            parser.set_defaults(func=_run, command_impl=action.impl)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(asyncio.run(args.command_impl(args)))
    except CommandError as exc:
        print(f"mandat {args.command} {args.action}: {exc}", file=sys.stderr)
        return 2
