"""The audit commands behind `services.tools.audit.cli`: open the stores, run, print, exit code."""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.topics import AUDIT_REPLAY
from services.adapters.eventstore.projections import PROJECTIONS_OF, ProjectionCheck, rebuild
from services.adapters.kafka.security import client_options
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.shards import ABOUT_ORGANISMS
from services.adapters.trust.anchors import Anchor, AnchorReadError, AnchorRecord, read_anchors
from services.adapters.trust.signing import (
    KeyFileError,
    key_id,
    load_private_key,
    load_public_key,
    write_key_pair,
)
from services.domain.catalog import selected
from services.tools.audit.anchored import AnchorCheck, check_anchors
from services.tools.audit.chain import ChainResult, check_chain
from services.tools.audit.options import (
    CommandError,
    Shard,
    each_store,
    endpoint,
    selection_of,
    settings_of,
)
from services.tools.audit.proofs import (
    ProofError,
    check_proof,
    digest_of,
    masked,
    proof_bytes,
    prove_service,
)
from services.tools.audit.replay import Mismatch, ReplaySummary, replay
from services.tools.audit.republish import (
    LiveTopicError,
    RepublishResult,
    new_replay_id,
    republish,
)
from services.tools.audit.trail import Trail, trail
from services.tools.cli import print_json

if TYPE_CHECKING:
    from services.tools.audit.redrive import RedriveResult


def _where(shard: Shard) -> str:
    """How a line names a shard (nothing for a store in one piece, as before shards)."""
    return f" (schema {shard.store.schema})" if shard.sharded else ""


def _print_report(command: str, **fields: Any) -> None:
    """A command's JSON answer: its name, then `fields` in order."""
    print_json({"command": command, **fields})


def _mismatch_lines(m: Mismatch) -> list[str]:
    change = (
        m.event_type
        if m.replayed_type in (None, m.event_type)
        else f"{m.event_type} -> {m.replayed_type}"
    )
    where = f"#{m.position}" if m.position is not None else "(not recorded)"
    lines = [
        f"  {where} {change} (input #{m.input_position}): {m.kind}"
        + (f" — {m.note}" if m.note else "")
    ]
    return lines + [f"      {d}" for d in m.diffs]


def _summary_line(s: ReplaySummary, schema: str) -> str:
    return (
        f"{s.service} (schema {schema}): {s.events_read:,} events read up to "
        f"#{s.last_position} — {s.inputs:,} inputs, {s.rejections:,} rejections; "
        f"{s.decisions_checked:,} decisions checked, {s.matched:,} matched, "
        f"{len(s.mismatches):,} {'mismatches' if s.mode == 'verify' else 'would change'}"
        f" ({s.seconds:.2f} s, {s.events_per_second:,.0f} events/s)"
    )


async def verify(args: argparse.Namespace) -> int:
    """`mandat replay verify`: every recorded decision recomputed and compared (a store in
    shards: each shard on its own, `--jobs` at a time)."""
    results: list[tuple[Shard, ReplaySummary]] = []
    for service in selected(args.service):

        async def verify_one(shard: Shard, service: Any = service) -> tuple[Shard, ReplaySummary]:
            return shard, await replay(shard.store, service, selection=selection_of(args))

        results += await each_store(args, service, verify_one, jobs=args.jobs)
    ok = all(s.ok for _, s in results)
    if args.json:
        _print_report(
            "replay verify",
            selection=selection_of(args).describe(),
            services=[s.as_dict() | shard.labels() for shard, s in results],
            ok=ok,
        )
        return 0 if ok else 1
    for shard, s in results:
        print(_summary_line(s, shard.store.schema))
        for m in s.mismatches[: args.show]:
            print("\n".join(_mismatch_lines(m)))
        if len(s.mismatches) > args.show:
            print(f"  … {len(s.mismatches) - args.show} more (--show, --json)")
    print("replay verify: " + ("OK, every decision reproduced" if ok else "MISMATCH"))
    return 0 if ok else 1


def _candidate(args: argparse.Namespace) -> Any:
    if not args.rules:
        return None
    if args.service is None:
        raise CommandError("--rules needs --service (a rule set belongs to one service)")
    module, _, name = args.rules.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CommandError(f"cannot load rule set {args.rules!r}: {exc}") from exc


async def what_if(args: argparse.Namespace) -> int:
    """`mandat replay what-if`: the decisions the current (or a candidate) rule set would
    take differently over the recorded history. Nothing is written."""
    candidate = _candidate(args)
    results: list[tuple[Shard, str, ReplaySummary]] = []
    for service in selected(args.service):
        rules = candidate if candidate is not None else service.current

        async def what_if_one(
            shard: Shard, service: Any = service, rules: Any = rules
        ) -> tuple[Shard, str, ReplaySummary]:
            summary = await replay(
                shard.store, service, mode="what-if", rules=rules, selection=selection_of(args)
            )
            return shard, rules.version, summary

        results += await each_store(args, service, what_if_one)
    changed = sum(len(s.mismatches) for _, _, s in results)
    if args.json:
        _print_report(
            "replay what-if",
            selection=selection_of(args).describe(),
            services=[
                s.as_dict() | {"rules_version": v} | shard.labels() for shard, v, s in results
            ],
            changed=changed,
        )
        return 1 if changed else 0
    for shard, version, s in results:
        print(f"rules {version}: " + _summary_line(s, shard.store.schema))
        for m in s.mismatches[: args.show]:
            print("\n".join(_mismatch_lines(m)))
        if len(s.mismatches) > args.show:
            print(f"  … {len(s.mismatches) - args.show} more (--show, --json)")
    print(
        f"replay what-if: {changed} decision(s) would change"
        if changed
        else "replay what-if: no decision would change"
    )
    return 1 if changed else 0


async def chain(args: argparse.Namespace) -> int:
    """`mandat audit chain`: the hash chain of each store (of each shard, `--jobs` at a
    time); with `--public-key`, each store against its signed anchors too
    (services/tools/audit/anchored.py)."""
    keys = _public_keys(args)
    records = await _anchor_records(args) if keys else []
    results: list[tuple[Shard, ChainResult, AnchorCheck | None]] = []
    for service in selected(args.service):

        async def chain_one(
            shard: Shard, name: str = service.name
        ) -> tuple[Shard, ChainResult, AnchorCheck | None]:
            result = await check_chain(shard.store, name)
            anchors = await check_anchors(shard.store, name, records, keys) if keys else None
            return shard, result, anchors

        results += await each_store(args, service, chain_one, jobs=args.jobs)
    ok = all(r.ok and (a is None or a.ok) for _, r, a in results)
    if args.json:
        _print_report(
            "audit chain",
            ok=ok,
            services=[
                r.as_dict() | shard.labels() | ({"anchors": a.as_dict()} if a is not None else {})
                for shard, r, a in results
            ],
        )
        return 0 if ok else 1
    for _, r, anchors in results:
        if r.ok:
            print(
                f"{r.service} (schema {r.schema}): chain OK over {r.checked:,} rows "
                f"(head #{r.head}, {r.seconds:.2f} s)"
            )
        else:
            d = r.detail or {}
            what = ", ".join(
                f"{k} {d[k]}" for k in ("event_type", "stream_id", "event_id") if k in d
            )
            print(
                f"{r.service} (schema {r.schema}): chain BROKEN at position {r.first_broken} — "
                f"{d.get('problem')}"
                + (f" ({what})" if what else "")
                + f"; the {r.checked:,} rows before it hold"
            )
            if "stored_hash" in d:
                print(
                    f"    stored hash     {d['stored_hash']}\n"
                    f"    recomputed hash {d['recomputed_hash']}"
                )
        if anchors is not None:
            print("\n".join(anchors.lines()))
    print("audit chain: " + ("OK" if ok else "BROKEN"))
    return 0 if ok else 1


async def trail_cmd(args: argparse.Namespace) -> int:
    """`mandat audit trail SUBJECT`: the subject's history, service by service. In a store
    in shards, every shard is searched (`--jobs` at a time): a person's history is in the
    shard of their NIR, but what names one of their ids may be elsewhere (a payment another
    person's shard refused) -- a store in one piece shows it too -- and each shard that
    holds something about the subject is shown, named by its schema."""
    trails: list[tuple[Shard, Trail]] = []
    for service in selected(args.service):

        async def trail_one(shard: Shard, name: str = service.name) -> tuple[Shard, Trail]:
            as_of = args.as_of_position
            if args.as_of is not None:  # each store has its own positions
                as_of = await shard.store.position_at(args.as_of)
            found = await trail(shard.store, name, args.subject, as_of=as_of)
            if shard.sharded:
                found.schema = shard.store.schema
            return shard, found

        held = await each_store(args, service, trail_one, jobs=args.jobs)
        trails += [(shard, t) for shard, t in held if t.entries]
    if args.json:
        _print_report(
            "audit trail",
            subject=args.subject,
            services=[t.as_dict() | shard.labels() for shard, t in trails],
        )
    else:
        for _, found in trails:
            print("\n".join(found.lines()))
        if not trails:
            print(f"audit trail: nothing recorded about {args.subject}")
    return 0 if trails else 1


async def republish_cmd(args: argparse.Namespace) -> int:
    """`mandat replay republish`: a range of stored events to the audit topic."""
    settings = settings_of(args)
    topic = args.topic or settings.topic_audit_replay
    defaults = ServiceSettings.model_fields
    live = {getattr(settings, name) for name in defaults if name.startswith("topic_")}
    live |= {f.default for name, f in defaults.items() if name.startswith("topic_")}
    live -= {settings.topic_audit_replay, AUDIT_REPLAY}  # both the configured and default
    bootstrap = endpoint(args.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    replay_id = args.replay_id or new_replay_id()
    results: list[tuple[Shard, RepublishResult]] = []
    for service in selected(args.service):

        async def republish_one(
            shard: Shard, service: Any = service
        ) -> tuple[Shard, RepublishResult]:
            try:
                return shard, await republish(
                    shard.store,
                    service,
                    bootstrap,
                    topic=topic,
                    live_topics=live,
                    replay_id=replay_id,
                    selection=selection_of(args),
                    include_inputs=args.include_inputs,
                    partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication_factor,
                    retention_ms=settings.topic_retention_ms,
                    client_options=client_options(settings, "admin"),
                    shard=shard.index if shard.sharded else None,
                    # a fact every shard records under one id: sent once, with the first
                    leave_out=ABOUT_ORGANISMS if shard.index else frozenset(),
                )
            except LiveTopicError as exc:
                raise CommandError(str(exc)) from exc

        # one shard after the other: each shard's events go out in its order
        results += await each_store(args, service, republish_one)
    if args.json:
        _print_report(
            "replay republish",
            replay_id=replay_id,
            topic=topic,
            services=[r.as_dict() | shard.labels() for shard, r in results],
        )
        return 0
    for shard, r in results:
        print(
            f"{r.service}{_where(shard)}: {r.sent:,} events republished to {r.topic} "
            f"(read up to #{r.last_position}, {r.seconds:.2f} s)"
        )
    print(f"replay republish: replay_id {replay_id}")
    return 0


async def redrive_cmd(args: argparse.Namespace) -> int:
    """`mandat rejections redrive`: rejected records to their source topics again."""
    from uuid import UUID

    from services.tools.audit.redrive import redrive

    bootstrap = endpoint(args.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    try:
        ids = frozenset(UUID(i) for i in args.id) or None
    except ValueError as exc:
        raise CommandError(f"not a rejection id: {exc}") from exc
    kinds = None if args.kind == "all" else frozenset({args.kind})
    results: list[tuple[Shard, RedriveResult]] = []
    for service in selected(args.service):

        async def redrive_one(shard: Shard, name: str = service.name) -> tuple[Shard, Any]:
            return shard, await redrive(
                shard.store,
                name,
                bootstrap,
                kinds=kinds,
                ids=ids,
                from_position=args.from_position,
                to_position=args.to_position,
                dry_run=args.dry_run,
                client_options=client_options(settings_of(args), "admin"),
            )

        results += await each_store(args, service, redrive_one)
    if args.json:
        _print_report(
            "rejections redrive",
            dry_run=args.dry_run,
            services=[r.as_dict() | shard.labels() for shard, r in results],
        )
    else:
        for shard, r in results:
            verb = "would re-drive" if args.dry_run else "re-drove"
            print(
                f"{r.service}{_where(shard)}: {verb} {len(r.selected)} rejected records"
                f" ({r.seconds:.2f} s)"
            )
            for o in r.selected:
                print(f"    #{o.position} {o.rejection_id} -> {o.topic}: {o.reason}")
            for missing in r.missing:
                print(f"    {missing}: not found on its topic (or not sendable): not re-driven")
    return 1 if any(r.missing for _, r in results) else 0


async def rebuild_cmd(args: argparse.Namespace) -> int:
    """`mandat projections rebuild`: fold from position 0 and compare with the live tables."""
    results: list[tuple[str, Shard, ProjectionCheck]] = []
    for service in selected(args.service):

        async def rebuild_one(
            shard: Shard, name: str = service.name
        ) -> list[tuple[str, Shard, ProjectionCheck]]:
            store = shard.store
            try:
                checks = await rebuild(store, projections=PROJECTIONS_OF[name], repair=args.repair)
            except asyncpg.UndefinedTableError as exc:
                raise CommandError(f"no projection tables in {store.schema}: {exc}") from exc
            return [(name, shard, c) for c in checks]

        for checks in await each_store(args, service, rebuild_one, admin=args.repair):
            results.extend(checks)
    ok = all(c.ok for _, _, c in results)
    if args.json:
        _print_report(
            "projections rebuild",
            repaired=bool(args.repair and not ok),
            projections=[
                c.as_dict() | {"service": n, "schema": shard.store.schema} | shard.labels()
                for n, shard, c in results
            ],
            ok=ok,
        )
        return 0 if ok else 1
    for name, shard, c in results:
        verdict = "equal to live" if c.ok else f"{len(c.differences)} rows DIFFER from live"
        print(
            f"{name} (schema {shard.store.schema}): {c.projection} rebuilt from position 0 up to "
            f"#{c.position} (head #{c.head}): {len(c.rebuilt)} rows, {verdict}"
        )
        for (organisme, caisse), (cents, count) in sorted(c.rebuilt.items()):
            print(f"    {organisme:<20} {caisse:<10} {cents / 100:>16,.2f} €  ({count:,})")
        for d in c.differences:
            print(
                f"    DIFF {d['organisme_id']} {d['caisse_de_base']}: live {d['live']}"
                f" rebuilt {d['rebuilt']}"
            )
    repaired = " (live rows replaced by the rebuilt ones)" if args.repair and not ok else ""
    print("projections rebuild: " + ("OK" if ok else "DIFFERENT" + repaired))
    return 0 if ok else 1


# --- signed anchors and proofs (docs/trust.md) ----------------------------------------------


def _public_keys(args: argparse.Namespace) -> list[Ed25519PublicKey]:
    try:
        return [load_public_key(path) for path in args.public_key or []]
    except KeyFileError as exc:
        raise CommandError(str(exc)) from exc


def _anchors_topic(args: argparse.Namespace) -> str:
    return str(args.anchors_topic or settings_of(args).topic_audit_anchors)


async def _anchor_records(args: argparse.Namespace) -> list[AnchorRecord]:
    """Every record of the anchors topic (the second, independent system)."""
    bootstrap = endpoint(args.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    try:
        return await read_anchors(
            bootstrap,
            _anchors_topic(args),
            client_options=client_options(settings_of(args), "reader"),
        )
    except AnchorReadError as exc:
        raise CommandError(str(exc)) from exc
    except Exception as exc:  # the broker cannot be reached: the check cannot run
        raise CommandError(
            f"cannot read the anchors topic: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc


def _anchors_of(
    records: list[AnchorRecord], service: str, schema: str, keys: list[Ed25519PublicKey]
) -> list[Anchor]:
    """The anchors of one store, by size (signed by `keys` when given)."""
    found = [
        r.anchor
        for r in records
        if r.anchor is not None
        and r.about(service, schema)
        and (not keys or r.anchor.signed_by(keys))
    ]
    return sorted(found, key=lambda a: (a.size, a.anchored_at))


async def keygen_cmd(args: argparse.Namespace) -> int:
    """`mandat audit keygen --out FILE`: a new anchor key pair."""
    try:
        private, public = write_key_pair(Path(args.out))
        ident = key_id(load_public_key(public))
    except KeyFileError as exc:
        raise CommandError(str(exc)) from exc
    print(
        f"private key {private} (mode 600: give it to the services only, never to the "
        f"database)\npublic key  {public} (give it to auditors)\nkey id      {ident}"
    )
    return 0


async def anchor_cmd(args: argparse.Namespace) -> int:
    """`mandat audit anchor --key FILE`: sign and publish an anchor of each store now."""
    from services.adapters.trust.anchorer import Anchorer, AnchorRefused

    try:
        key = load_private_key(args.key)
    except KeyFileError as exc:
        raise CommandError(str(exc)) from exc
    bootstrap = endpoint(args.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    refused = False

    async def anchor_one(shard: Shard, name: str) -> None:
        """Anchor one store (each shard has its own chain, so its own anchors)."""
        nonlocal refused
        store = shard.store
        async with Anchorer(
            store,
            service=name,
            key=key,
            bootstrap_servers=bootstrap,
            topic=_anchors_topic(args),
            client_options=client_options(settings_of(args), "admin"),
        ) as anchorer:
            try:
                anchor = await anchorer.anchor_now()
            except AnchorRefused as exc:
                print(f"{name} (schema {store.schema}): REFUSED: {exc}")
                refused = True
                return
        if anchor is None:
            print(
                f"{name} (schema {store.schema}): nothing new since the "
                f"{anchorer.last.describe() if anchorer.last else 'empty store'}"
            )
        else:
            print(f"{name} (schema {store.schema}): {anchor.describe()} published")

    for service in selected(args.service):
        await each_store(args, service, functools.partial(anchor_one, name=service.name))
    return 1 if refused else 0


async def prove_cmd(args: argparse.Namespace) -> int:
    """`mandat audit prove SUBJECT`: the proof on stdout, what could not be proven on
    stderr."""
    if args.extends is not None and args.service is None:
        raise CommandError("--extends needs --service (anchor sizes are per store)")
    return await _prove(args, args.subject, extends=args.extends, to_size=None)


async def consistency_cmd(args: argparse.Namespace) -> int:
    """`mandat audit consistency --from-size M`: that a later anchor extends an earlier one."""
    if args.service is None:
        raise CommandError("--service is needed (anchors are per store)")
    return await _prove(args, None, extends=args.from_size, to_size=args.to_size)


async def _prove(
    args: argparse.Namespace, subject: str | None, *, extends: int | None, to_size: int | None
) -> int:
    keys = _public_keys(args)
    records = await _anchor_records(args)
    parts: list[dict[str, Any]] = []
    failed = False

    async def prove_one(shard: Shard, name: str) -> None:
        """The part of one store (each shard has its own anchors): added to `parts`."""
        nonlocal failed
        store, label = shard.store, name + _where(shard)
        every = _anchors_of(records, name, store.schema, keys)
        anchors = [a for a in every if to_size is None or a.size == to_size]
        if not anchors or failed:
            if not failed:
                _note(
                    f"{label}: no signed anchor"
                    + (f" of size {to_size}" if to_size else "")
                    + ": nothing can be proven"
                )
            return
        earlier = None
        if extends is not None:
            earlier = next((a for a in every if a.size == extends), None)
            if earlier is None and not shard.sharded:
                raise CommandError(f"{name}: no anchor of size {extends}")
            if earlier is None:  # sizes are per shard: this one has none of that size
                _note(f"{label}: no anchor of size {extends}")
                return
        try:
            made = await prove_service(store, name, subject, anchors[-1], earlier)
        except ProofError as exc:
            _note(f"{label}: {exc}")
            failed = True
            return
        if subject is not None and made.proven == 0:
            if made.after_anchor:
                _note(
                    f"{label}: {made.after_anchor} events about {masked(subject)}, "
                    "all recorded after the latest anchor: not provable yet"
                )
            return
        if made.after_anchor:
            _note(
                f"{label}: {made.after_anchor} later events about {masked(subject)} "
                f"are after the latest anchor (#{anchors[-1].size}): not in this proof"
            )
        parts.append(made.part)

    for service in selected(args.service):
        await each_store(args, service, functools.partial(prove_one, name=service.name))
        if failed:
            return 1
    if not parts:
        _note(f"audit prove: nothing recorded and anchored about {masked(subject)}")
        return 1
    sys.stdout.buffer.write(proof_bytes(subject, parts))
    sys.stdout.flush()
    return 0


def _note(line: str) -> None:
    print(line, file=sys.stderr)


async def check_proof_cmd(args: argparse.Namespace) -> int:
    """`mandat audit check-proof FILE --public-key KEY`: offline; 0 holds, 1 does not."""
    keys = _public_keys(args)
    try:
        data = sys.stdin.buffer.read() if args.proof == "-" else Path(args.proof).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {args.proof}: {exc.strerror}") from exc
    report = check_proof(data, keys)
    if args.json:
        print_json({"command": "audit check-proof", "sha256": digest_of(data)} | report.as_dict())
        return 0 if report.ok else 1
    print("\n".join(report.lines))
    if report.ok:
        print(f"check-proof: OK — {report.events} events in the signed record, unaltered")
        return 0
    print(f"check-proof: FAILED — {report.failure}")
    return 1
