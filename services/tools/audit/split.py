"""`mandat store split`: a store of one sequence moved into the layout of shards, verified by
replay (services/adapters/eventstore/shards.py says where shards are, runtime/shards.py
what goes where).

Run as the database owner with the service stopped: the split holds the hub's append lock
throughout (an instance still running waits, and finds its grants on the hub gone when the
split is recorded), and refuses a hub whose relay has not published every decision and
rejection. The hub's own events are left as they are (append-only: the archive the shards
are copied from). Every one of them is copied, in order, into the shard the runtime in
shards would have recorded it in -- an event naming a person into that person's shard, a
decision naming none into its input's, a fact about organisms into every shard, a rejection
by its Kafka key (in the first shard, a fact about organisms the rules refused) -- with its
id, stream, type, payload, metadata and recording time; each shard gives them its own
positions, hash chain and stream versions (a stream wholly in one shard keeps its versions;
one whose events name people of several shards, a payment parked on a contribution that
turns out to be another person's, is numbered in each shard as that shard recorded it). A
revision task (its opening and steps) goes to each shard that has people of its organisms,
for those organisms only (the opening lists them: what that shard would have recorded);
each shard's replay re-runs a step over its own people.

A decision's id is the rank it had in the outcome of its input in the one store; a shard
holds the part of that outcome about its people, so where the ranks differ the shard keeps
the store's id in `split_ids`, and its replay names the decisions from there: what is
verified is that each shard's history, re-run alone, gives exactly the decisions the store
recorded, under the ids it published them with.

Nothing is recorded in the hub (its layout, the split) unless every shard's chain holds
and its replay matches every recorded decision.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from uuid import UUID

import asyncpg

from contracts import check_headers
from contracts.parsing import parse_inbound
from services.adapters.eventstore import EventStore, StoredEvent
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import Encoded, create_pool
from services.adapters.eventstore.roles import grant_hub, grant_store, service_role
from services.adapters.eventstore.shards import Layout, read_layout, record_id_space
from services.adapters.eventstore.store import COLUMNS
from services.adapters.runtime import state
from services.adapters.runtime.shards import ABOUT_ORGANISMS, claim_keys, shard_of, shard_of_key
from services.domain.catalog import PAYLOAD_MODELS, SERVICES, ServiceDescription
from services.domain.kernel.processing import REJECTION, Input, decision_id
from services.domain.kernel.records import GENESIS_HASH, chained
from services.domain.kernel.tasks import REVISION_STEP, REVISIONS_OPENED
from services.tools.audit.options import CommandError, endpoint, settings_of
from services.tools.audit.reading import is_input
from services.tools.audit.replay import replay
from services.tools.cli import print_json

EVERY = -1
"""The place of an event every shard records."""

Topics = Mapping[str, frozenset[str]]
"""The input types each topic a service reads may carry (as the runtime checks them)."""

CHUNK = 5000
"""Events read from the hub, and written to each shard, at a time."""


class SplitError(RuntimeError):
    """The split cannot be made over the store as it is."""


@dataclass(slots=True)
class ShardCopy:
    """One shard as it is filled: its head, its chain, and what its replay needs."""

    shard: int
    schema: str
    head: int = 0
    hash: bytes = GENESIS_HASH
    versions: dict[str, int] = field(default_factory=dict)  # each stream's, in this shard
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    renamed: dict[tuple[UUID, int], UUID] = field(default_factory=dict)
    """(input, rank in this shard's part of its outcome) -> the decision's id in the store,
    where the store's rank was another."""
    starts: dict[str, int] = field(default_factory=dict)  # revisions_start & co, mapped
    relayed: dict[str, int] = field(default_factory=dict)  # relay checkpoints, mapped

    def append(self, event: StoredEvent) -> int:
        """Give `event` this shard's next position and the next version of its stream in
        this shard (as the shard's fold numbers them: a stream the shard holds whole keeps
        its versions); chain it."""
        self.head += 1
        version = self.versions[event.stream_id] = self.versions.get(event.stream_id, 0) + 1
        payload, metadata, self.hash = chained(
            self.hash, self.head, event.stream_id, version, event, event.recorded_at
        )
        self.rows.append(
            (
                self.head,
                event.stream_id,
                version,
                event.event_id,
                event.event_type,
                event.schema_version,
                Encoded(payload),
                Encoded(metadata),
                event.recorded_at,
                self.hash,
            )
        )
        return self.head


@dataclass(slots=True)
class ShardReport:
    """What the split wrote into one shard and what its verification found."""

    shard: int
    schema: str
    events: int
    renamed: int  # decisions whose rank in their outcome is another here than in the store
    chain_ok: bool
    decisions_checked: int
    matched: int
    mismatches: int
    first_mismatches: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.chain_ok and not self.mismatches


@dataclass(slots=True)
class SplitReport:
    """The split of one service's store."""

    service: str
    hub: str
    shards: int
    hub_head: int
    claims: int
    reports: list[ShardReport]
    copy_seconds: float  # reading the hub, writing the shards
    seconds: float  # in all: with each shard's fold, chain check and replay
    recorded: bool = False

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


def _unb64(text: object) -> bytes | None:
    """Bytes kept in base64 (None kept as None); ValueError when they are not."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)


def _stored_header(header: object) -> tuple[str, bytes | None]:
    """A header as a rejection keeps it ([name, value] or [name, value, "b64"]), back."""
    if not isinstance(header, list) or len(header) not in (2, 3):
        raise ValueError("not a stored header")
    name, value = header[0], _unb64(header[1])
    if len(header) == 3:
        return (_unb64(name) or b"").decode("utf-8", "surrogatepass"), value
    if not isinstance(name, str):
        raise ValueError("not a header name")
    return name, value


def refused_fact(payload: Mapping[str, Any], topics: Topics) -> bool:
    """Whether the record a rejection keeps whole, read again as the runtime reads it (its
    headers, then its value against its topic's types and its key), is a fact about
    organisms: the runtime gave it to the first shard, which refused it (runtime.sharded)."""
    try:
        value, key = _unb64(payload.get("value")), _unb64(payload.get("key"))
        if value is None:  # kept by reference (too large, undecodable): not readable again
            return False
        check_headers([_stored_header(h) for h in payload.get("headers") or ()])
        topic = payload.get("topic")
        allowed = topics.get(topic) if isinstance(topic, str) else None
        event = parse_inbound(value, allowed=allowed, key=key)
    except Exception:  # the contract refused it (or cannot read it): placed by its key
        return False
    return event.event_type in ABOUT_ORGANISMS


def rejection_place(payload: Mapping[str, Any], shards: int, topics: Topics) -> int:
    """A rejection's shard, as the runtime places a record it refuses: the first shard for a
    fact about organisms the rules refused, else by its Kafka key (kept in base64), else by
    its partition; shard 0 when it keeps neither."""
    if refused_fact(payload, topics):
        return 0
    key = payload.get("key")
    if isinstance(key, str):
        try:
            return shard_of_key(base64.b64decode(key, validate=True), shards)
        except (binascii.Error, ValueError):
            return 0
    partition = payload.get("partition")
    if isinstance(partition, int) and not isinstance(partition, bool) and partition >= 0:
        return partition % shards
    return 0


class Router:
    """The shard of each event of the store, read in order, as the runtime in shards places
    it: an event naming a person in that person's shard (whatever stream it is in: a
    payment parked on a contribution later due for someone else is in its payer's shard,
    the contribution in its person's), a decision naming nobody in its input's shard."""

    def __init__(self, shards: int, topics: Topics) -> None:
        self.shards = shards
        self.topics = topics
        self.streams: dict[str, int] = {}  # the shard of each stream's last event

    def place(self, event: StoredEvent, head: int | None) -> int:
        """The shard of `event` (`EVERY`: all of them); `head` is the place of the input
        whose outcome it is part of (None for the input itself)."""
        if event.event_type == REJECTION:
            return rejection_place(event.payload, self.shards, self.topics)
        nir = event.payload.get("nir")
        if event.event_type in ABOUT_ORGANISMS or event.event_type in (
            REVISIONS_OPENED,
            REVISION_STEP,
        ):
            place = EVERY
        elif isinstance(nir, str):
            place = shard_of(nir, self.shards)
        elif head is not None and head != EVERY:  # a decision: where its input was decided
            place = head
        elif (placed := self.streams.get(event.stream_id)) is not None:
            place = placed
        else:
            raise SplitError(
                f"cannot place the {event.event_type} at position {event.position}: it names"
                " no person and its stream has no shard yet"
            )
        self.streams[event.stream_id] = place
        return place


def claims_of(event: StoredEvent, shards: Sequence[int]) -> Iterator[tuple[str, int]]:
    """The ids `event`, copied into `shards`, claims in the hub, as the runtime claims them
    (runtime/shards.py): its event id for the first shard holding it (the first shard, for
    a fact about organisms every shard holds under one id, or an event copied nowhere: a
    task about organisms nobody is affiliated to), and an input's business ids for its."""
    first = min(shards, default=0)
    yield f"e:{event.event_id}", first
    model = PAYLOAD_MODELS.get(event.event_type)
    if model is None or event.event_type in ABOUT_ORGANISMS:
        return
    message = Input(event.event_id, event.event_type, model.model_validate(event.payload), {})
    claimed, _ = claim_keys(message, first)
    for key in claimed[1:]:  # (its event id: above)
        yield key, first


class Splitter:
    """Reads the hub once, in order, and fills the shards' rows, claims and id renames."""

    def __init__(
        self,
        service: str,
        copies: Sequence[ShardCopy],
        starts: dict[str, int],
        relays: dict[str, int],
        topics: Topics | None = None,  # (None: the contract's names)
    ) -> None:
        self.service = service
        self.copies = copies
        self.router = Router(len(copies), SERVICES[service].inputs if topics is None else topics)
        self.starts = starts  # hub positions from which revisions (in steps) start
        self.relays = relays  # hub positions each relay published up to
        self.claims: dict[str, int] = {}
        self._head: StoredEvent | None = None
        self._head_place: int | None = None
        self._ranks: list[int] = [0] * len(copies)  # rank in each shard's part of the outcome
        self.peopled: list[set[str]] = [set() for _ in copies]  # organisms with people, by shard
        self.tasks: dict[str, dict[int, set[str]]] = {}  # a task's organisms in each shard

    def take(self, event: StoredEvent) -> None:
        """Copy one event of the hub (the next in its order) into its shard(s)."""
        starts_step = is_input(event) or event.event_type == REJECTION
        place = self.router.place(event, None if starts_step else self._head_place)
        if starts_step:
            self._head, self._head_place = event, place
            self._ranks = [0] * len(self.copies)
        if event.event_type == "AffiliationEnregistree" and place != EVERY:
            self.peopled[place].add(str(event.payload.get("organisme_id")))
        shards = []
        for k, copied in self.targets(event, place):
            self._copy(self.copies[k], copied, decision=not starts_step)
            shards.append(k)
        for key, shard in claims_of(event, shards):
            if self.claims.setdefault(key, shard) != shard:
                raise SplitError(f"an id claimed by two shards (event {event.position})")

    def targets(self, event: StoredEvent, place: int) -> Iterator[tuple[int, StoredEvent]]:
        """Each shard `event` goes to, and the event as that shard holds it. A revision
        task is opened in a shard, and its steps copied there, only for the organisms that
        shard has people of: what the shard would have recorded (the rules open no task
        for an organism nobody was affiliated to)."""
        if place != EVERY:
            yield place, event
            return
        if event.event_type == REVISIONS_OPENED:
            fact, organisms = str(event.payload["fait_id"]), list(event.payload["organismes"])
            for k in range(len(self.copies)):
                mine = [o for o in organisms if o in self.peopled[k]]
                self.tasks.setdefault(fact, {})[k] = set(mine)
                if mine == organisms:
                    yield k, event
                elif mine:
                    yield k, replace(event, payload={**event.payload, "organismes": mine})
            return
        if event.event_type == REVISION_STEP:
            opened = self.tasks.get(str(event.payload.get("fait_id")), {})
            for k in range(len(self.copies)):
                if event.payload.get("organisme_id") in opened.get(k, ()):
                    yield k, event
            return
        for k in range(len(self.copies)):
            yield k, event

    def _copy(self, copy: ShardCopy, event: StoredEvent, *, decision: bool) -> None:
        at = copy.append(event)
        for name, since in self.starts.items():
            if event.position >= since:
                copy.starts.setdefault(name, at)
        for name, published in self.relays.items():
            if event.position <= published:
                copy.relayed[name] = at
        if not decision:
            return
        k = copy.shard
        self._ranks[k] += 1
        head = self._head
        assert head is not None
        if decision_id(head.event_id, self._ranks[k], self.service) != event.event_id:
            copy.renamed[(head.event_id, self._ranks[k])] = event.event_id

    def close(self, copy: ShardCopy) -> None:
        """After the last event: a start the shard never reached is its next position, and a
        relay that published nothing of it stands at 0."""
        for name in self.starts:
            copy.starts.setdefault(name, copy.head + 1)
        for name in self.relays:
            copy.relayed.setdefault(name, 0)


async def _refuse_unless_splittable(conn: asyncpg.Connection, layout: Layout) -> None:
    """Refuse a store already in shards, already split, or whose shards hold events."""
    recorded = await read_layout(conn, layout.hub)
    if recorded.sharded:
        raise SplitError(f"{layout.hub} is already in {recorded.shards} shards")
    if await conn.fetchval(f'SELECT count(*) FROM "{layout.hub}".store_split'):
        raise SplitError(f"{layout.hub} was split already")
    for schema in layout.schemas:
        if await conn.fetchval(f'SELECT count(*) FROM "{schema}".events'):
            raise SplitError(
                f"shard schema {schema} holds events (a split that failed?): drop it first"
            )


async def _hub_positions(
    conn: asyncpg.Connection, hub: str
) -> tuple[dict[str, int], dict[str, int]]:
    """Where revisions (in steps) start in the hub, and up to where each relay published."""
    starts = {}
    for table in ("revisions_start", "revision_steps_start"):
        found = await conn.fetchval(f'SELECT position FROM "{hub}".{table}')
        if found is not None:
            starts[table] = int(found)
    relays = {
        r["relay"]: int(r["position"])
        for r in await conn.fetch(f'SELECT relay, position FROM "{hub}".relay_checkpoints')
    }
    return starts, relays


async def _refuse_unless_relayed(
    conn: asyncpg.Connection, hub: str, service: ServiceDescription, relays: Mapping[str, int]
) -> None:
    """Refuse a hub whose relay has not published every decision and rejection it holds.
    A shard's relay starts with no floors (it assumes it never published on any partition):
    right only if nothing of the hub is left to publish, nor was published past the hub's
    checkpoint (the floors that said where are the hub's, not the shard's). Past the
    last event the relay publishes, the hub's checkpoint may lag: nothing there is sent."""
    published = await conn.fetchval(
        f'SELECT max(position) FROM "{hub}".events WHERE event_type = ANY($1::text[])',
        sorted(service.decision_types | {REJECTION}),
    )
    relayed = relays.get(service.name, 0)
    if published is not None and relayed < published:
        raise SplitError(
            f"the relay of {service.name} has published up to position {relayed} of"
            f" {hub}, and the hub holds decisions or rejections up to {published}: start the"
            " service until /ready shows its relay caught up, stop it, then split"
        )


async def _write(conn: asyncpg.Connection, copy: ShardCopy) -> None:
    """COPY the shard's pending rows (in one transaction of their own)."""
    if not copy.rows:
        return
    async with conn.transaction():
        await conn.copy_records_to_table(
            "events", schema_name=copy.schema, records=copy.rows, columns=list(COLUMNS)
        )
    copy.rows = []


async def _finish(conn: asyncpg.Connection, copy: ShardCopy) -> None:
    """Where revisions start and relays stand in the shard, as they did in the hub, and
    the ids its replay takes from the store (`split_ids`)."""
    for table, at in copy.starts.items():
        await conn.execute(f'INSERT INTO "{copy.schema}".{table} (position) VALUES ($1)', at)
    for relay, at in copy.relayed.items():
        await conn.execute(
            f'INSERT INTO "{copy.schema}".relay_checkpoints (relay, position) VALUES ($1, $2)',
            relay,
            at,
        )
    # what facts every shard records cause here from now on: ids of this shard's own
    await record_id_space(conn, copy.schema, f"s{copy.shard}", copy.head + 1)
    await conn.copy_records_to_table(
        "split_ids",
        schema_name=copy.schema,
        records=[(trigger, rank, event_id) for (trigger, rank), event_id in copy.renamed.items()],
        columns=["trigger", "rank", "event_id"],
    )


async def split_store(
    dsn: str,
    service: ServiceDescription,
    hub: str,
    shards: int,
    *,
    chunk: int = CHUNK,
    topics: Topics | None = None,
) -> SplitReport:
    """Split the store of `service` in schema `hub` into `shards` shards (see the module);
    `topics`: the input types of each topic it reads, under their deployed names (the
    contract's names by default)."""
    started = time.perf_counter()
    topics = service.inputs if topics is None else topics
    layout = Layout(hub, shards)
    if not layout.sharded:
        raise SplitError("a split makes 2 shards or more")
    conn = await asyncpg.connect(dsn)
    pools: list[asyncpg.Pool] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"layout:{hub}")
        # every append to the hub takes this lock: an instance still running waits, and
        # nothing is appended between the copy and the record of the split
        await conn.execute("SELECT pg_advisory_lock($1)", EventStore.lock_key_of(hub))
        if await conn.fetchval("SELECT to_regclass($1)", f'"{hub}".events') is None:
            raise SplitError(f"no event store in schema {hub!r}")
        for schema in (hub, *layout.schemas):
            await apply_migrations(conn, schema)
        await _refuse_unless_splittable(conn, layout)
        hub_pool = await create_pool(dsn, hub, as_service_role=False, command_timeout=None)
        pools.append(hub_pool)
        source = EventStore(hub_pool, hub)
        head_row = await conn.fetchrow(
            f'SELECT position, hash FROM "{hub}".events ORDER BY position DESC LIMIT 1'
        )
        hub_head = int(head_row["position"]) if head_row else 0
        hub_hash = bytes(head_row["hash"]) if head_row else None
        starts, relays = await _hub_positions(conn, hub)
        await _refuse_unless_relayed(conn, hub, service, relays)
        copies = [ShardCopy(k, schema) for k, schema in enumerate(layout.schemas)]
        splitter = Splitter(service.name, copies, starts, relays, topics)
        async with hub_pool.acquire() as writer:  # (the pool's jsonb codec: COPY binary)
            async for event in source.iter_all(0, batch=chunk, until=hub_head):
                splitter.take(event)
                if any(len(c.rows) >= chunk for c in copies):
                    for copy in copies:
                        await _write(writer, copy)
            for copy in copies:
                await _write(writer, copy)
                splitter.close(copy)
                await _finish(conn, copy)
        copied = time.perf_counter() - started
        reports = []
        for copy in copies:
            pool = await create_pool(dsn, copy.schema, as_service_role=False, command_timeout=None)
            pools.append(pool)
            reports.append(await _verify(EventStore(pool, copy.schema), service, copy))
        report = SplitReport(
            service.name,
            hub,
            shards,
            hub_head,
            len(splitter.claims),
            reports,
            copied,
            time.perf_counter() - started,
        )
        if report.ok:
            await _record(conn, layout, hub_head, hub_hash, splitter.claims)
            report.recorded = True
        return report
    finally:
        for pool in pools:
            await pool.close()
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.execute("SELECT pg_advisory_unlock_all()")  # (an appender waiting goes on)
        await conn.close()  # (its advisory locks with it, in any case)


async def _verify(store: EventStore, service: ServiceDescription, copy: ShardCopy) -> ShardReport:
    """Fold the shard's decision state, check its chain, replay it against its record."""
    await state.catch_up(store, service.view)
    chain = await store.verify_chain()
    summary = await replay(store, service)  # (naming decisions from split_ids)
    return ShardReport(
        copy.shard,
        copy.schema,
        copy.head,
        len(copy.renamed),
        chain.ok and chain.checked == copy.head,
        summary.decisions_checked,
        summary.matched,
        len(summary.mismatches),
        [m.as_dict() for m in summary.mismatches[:5]],
    )


async def _record(
    conn: asyncpg.Connection,
    layout: Layout,
    head: int,
    head_hash: bytes | None,
    claims: dict[str, int],
) -> None:
    """Record the split, its claims and the layout in the hub (at once: a split that does
    not verify leaves none of them), unless the hub's head is no longer the one copied; let
    the service's role (when there is one: `mandat migrate` made it) use the shards, and
    take from it every grant on the hub a hub does not need (an instance started before
    the split can no longer append to the archive)."""
    async with conn.transaction():
        now = await conn.fetchrow(
            f'SELECT position, hash FROM "{layout.hub}".events ORDER BY position DESC LIMIT 1'
        )
        position, chain = (int(now["position"]), bytes(now["hash"])) if now else (0, None)
        if (position, chain) != (head, head_hash):
            raise SplitError(
                f"{layout.hub} was appended to during the split (head {position}, copied up"
                f" to {head}): nothing recorded; drop the shard schemas and split again"
            )
        await conn.execute(  # (a hub of one sequence never claimed anything)
            f'INSERT INTO "{layout.hub}".claims (key, shard)'
            " SELECT * FROM unnest($1::text[], $2::smallint[])",
            list(claims),
            list(claims.values()),
        )
        await conn.execute(
            f'INSERT INTO "{layout.hub}".store_split (head_position, head_hash, shards)'
            " VALUES ($1, $2, $3)",
            head,
            head_hash,
            layout.shards,
        )
        # not record_layout: it refuses a store holding events, which this one now does
        await conn.execute(
            f'INSERT INTO "{layout.hub}".shard_layout (shards) VALUES ($1)'
            " ON CONFLICT (singleton) DO UPDATE SET shards = EXCLUDED.shards",
            layout.shards,
        )
        role = service_role(layout.hub)
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            for schema in layout.schemas:
                await grant_store(conn, schema, role)
            await grant_hub(conn, layout.hub, role, sharded=True)


# ---------------------------------------------------------------- command line


def _print(report: SplitReport) -> None:
    print(
        f"{report.service} (schema {report.hub}): {report.hub_head:,} events split into"
        f" {report.shards} shards in {report.seconds:.1f} s (copied in {report.copy_seconds:.1f} s,"
        f" then folded and verified); {report.claims:,} ids claimed"
    )
    for r in report.reports:
        verdict = "ok" if r.ok else "MISMATCH"
        print(
            f"  shard {r.shard} ({r.schema}): {r.events:,} events ({r.renamed:,} decisions"
            " ranked otherwise in their outcome), chain"
            f" {'ok' if r.chain_ok else 'BROKEN'}, {r.decisions_checked:,} decisions checked,"
            f" {r.matched:,} matched: {verdict}"
        )
        for m in r.first_mismatches:
            print(f"    {m}")
    if report.recorded:
        print(f"layout recorded: {report.shards} shards; the hub's events kept as the archive")
    else:
        print(
            "layout NOT recorded: the store stays one sequence; drop the shard schemas"
            " before trying again",
            file=sys.stderr,
        )


async def split_cmd(args: argparse.Namespace) -> int:
    """`mandat store split --service S --shards N`."""
    service = SERVICES[args.service]
    settings = settings_of(args)
    hub = settings.schema_of(service.name)
    try:
        topics = {settings.topic(topic): types for topic, types in service.inputs.items()}
        report = await split_store(
            endpoint(args.database_url, "DATABASE_URL"), service, hub, args.shards, topics=topics
        )
    except (SplitError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    except (OSError, asyncpg.PostgresError) as exc:
        raise CommandError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
    if args.json:
        print_json({**asdict(report), "ok": report.ok})
    else:
        _print(report)
    return 0 if report.ok else 1
