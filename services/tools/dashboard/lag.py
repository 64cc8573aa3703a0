"""Each service's lag, as the dashboard measures it from outside.

- consumer lag: end offsets of the service's input topics − the offsets its consumer group
  committed (Kafka only: measurable even when the service is down), read as the services
  read it for their own metric (services/adapters/runtime/lag.py);
- relay lag: `store_head − relay_published` from the service's `/ready` (committed in
  PostgreSQL, not yet on Kafka); a service whose HTTP does not answer is shown as down;
- readiness: `/ready` answers 503 when the service is not ready, with its reasons, and
  says which component (consumer, relay) has been stalled for how many seconds. Its reply
  is read whole and any body is tolerated: a missing or odd field is simply not shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

from services.adapters.kafka.security import client_options
from services.adapters.runtime.lag import BrokerLag, NoInputTopics, total
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog
from services.tools.dashboard.shown import shown


@dataclass(frozen=True)
class Target:
    """A service as seen from outside: its group, its input topics, its HTTP port."""

    name: str
    group: str
    inputs: tuple[str, ...]
    http_host: str
    http_port: int


def targets(settings: ServiceSettings, http_host: str | None = None) -> list[Target]:
    """The services to watch; their HTTP hosts come from the settings unless one is given."""
    s = settings
    return [
        Target(
            name,
            s.group_of(name),
            tuple(s.topic(topic) for topic in service.inputs),
            http_host or s.http_host_of(name),
            s.http_port_of(name),
        )
        for name, service in catalog.SERVICES.items()
    ]


MAX_REPLY = 256 * 1024
"""Bytes of an HTTP reply read at most (a `/ready` document is a few hundred)."""
MAX_LISTED = 10
"""Stalled components and reasons shown at most per service."""
MAX_SECONDS = 10**9
"""A stall longer than this (about 31 years) is shown as this."""
MAX_COUNT = 10**12 - 1
"""The largest position or count taken from /ready (twelve digits)."""


class NoHttpReply(ValueError):
    """What answered is not an HTTP reply (or nothing did, before the timeout)."""


@dataclass(frozen=True)
class Reply:
    """An HTTP reply read whole: its status, and its body unless it was too large."""

    status: int
    body: bytes | None  # None: larger than MAX_REPLY (not read further)


async def http_get(
    host: str, port: int, path: str, timeout: float = 2.0, limit: int = MAX_REPLY
) -> Reply:
    """GET `path` over plain HTTP/1.0 and read the whole reply, however the server cuts it
    in packets: until the body has its Content-Length, the chunked body ends, or the
    server closes. Bounded by `timeout` (raises TimeoutError) and `limit`; raises OSError
    when nothing listens and :class:`NoHttpReply` when what answers is not HTTP."""

    async def get() -> Reply:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
                f"Accept: application/json\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            return await _read_reply(reader, limit)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.wait_for(get(), timeout)


async def _read_reply(reader: asyncio.StreamReader, limit: int) -> Reply:
    raw = b""
    head: tuple[int, dict[bytes, bytes]] | None = None
    body_at = 0
    while True:
        chunk = await reader.read(65536)
        raw += chunk
        if head is None and b"\r\n\r\n" in raw[: limit + 4]:
            head_bytes, _, _ = raw.partition(b"\r\n\r\n")
            head, body_at = _parse_head(head_bytes), len(head_bytes) + 4
        if head is None:
            if not chunk or len(raw) > limit:
                raise NoHttpReply("no HTTP reply head")
            continue
        status, headers = head
        body = raw[body_at:]
        if len(body) > limit:
            return Reply(status, None)
        done = _complete(body, headers)
        if done is not None:
            return Reply(status, done)
        if not chunk:  # the server closed: the body is what came
            return Reply(status, _dechunk(body) if _chunked(headers) else body)


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    """Status and headers (lower-cased names) of a reply head; NoHttpReply if not HTTP."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if (
        len(parts) < 2
        or not parts[0].startswith(b"HTTP/")
        or not re.fullmatch(rb"[1-5][0-9]{2}", parts[1])
    ):
        raise NoHttpReply("not an HTTP status line")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _chunked(headers: dict[bytes, bytes]) -> bool:
    return b"chunked" in headers.get(b"transfer-encoding", b"").lower()


def _complete(body: bytes, headers: dict[bytes, bytes]) -> bytes | None:
    """The whole body when it has all come (by Content-Length or a chunked end), else None
    (then the server's closing the connection ends it)."""
    if _chunked(headers):
        return _dechunk(body) if body.endswith(b"0\r\n\r\n") else None
    length = headers.get(b"content-length", b"")
    if re.fullmatch(rb"[0-9]{1,9}", length) and len(body) >= int(length):
        return body[: int(length)]
    return None


def _dechunk(body: bytes) -> bytes:
    """A chunked body decoded as far as it is well formed."""
    out, at = b"", 0
    while True:
        size_line, sep, _ = body[at:].partition(b"\r\n")
        size_text = size_line.split(b";")[0].strip()
        if not sep or not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
            return out
        size = int(size_text, 16)
        start = at + len(size_line) + 2
        if size == 0:
            return out
        out += body[start : start + size]
        at = start + size + 2


def _json_object(body: bytes | None) -> dict[str, Any] | None:
    """A reply body's JSON object, or None (any body is tolerated, none is trusted)."""
    if not body:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _count(value: object) -> int | None:
    """A non-negative integer field of /ready (a position, a count), else None; beyond
    MAX_COUNT it is no plausible position, and its digits could be a NIR's."""
    return value if type(value) is int and 0 <= value <= MAX_COUNT else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _stalled(value: object) -> list[dict[str, Any]]:
    """The components /ready says make no progress (`{"consumer": 12.5, "relay": 0}`):
    those stalled for more than 0 s, longest first."""
    if not isinstance(value, dict):
        return []
    found: list[dict[str, Any]] = []
    for name, seconds in list(value.items())[: 4 * MAX_LISTED]:
        if type(seconds) in (int, float) and seconds == seconds and seconds > 0:
            found.append(
                {
                    "component": shown(name, 40) or "?",
                    "seconds": round(min(float(seconds), MAX_SECONDS), 1),
                }
            )
    found.sort(key=lambda c: -c["seconds"])
    return found[:MAX_LISTED]


def _reasons(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [text for item in value[:MAX_LISTED] if (text := shown(item)) is not None]


def readiness(reply: Reply) -> dict[str, Any]:
    """What the page shows of a service's /ready reply, whatever its body: ready when it
    answers 200 and its document does not say otherwise; which component is stalled, for
    how long and why, when the document says so."""
    doc = _json_object(reply.body)
    problem = None
    if doc is None:
        problem = "reply too large" if reply.body is None else "reply is not a JSON object"
        doc = {}
    ready = reply.status == 200 and bool(doc.get("ready", True))
    head, published = _count(doc.get("store_head")), _count(doc.get("relay_published"))
    leader = _flag(doc.get("relay_leader"))
    lag = head - published if head is not None and published is not None and leader else None
    return {
        "up": True,
        "ready": ready,
        "http_status": reply.status,
        "store_head": head,
        "relay_published": published,
        "relay_leader": leader,
        "relay_lag": lag,
        "service_parked": _count(doc.get("parked")),
        "kafka": _flag(doc.get("kafka")),
        "postgres": _flag(doc.get("postgres")),
        "stalled": _stalled(doc.get("stalled")),
        "reasons": _reasons(doc.get("reasons")),
        "reply_problem": problem,
    }


class LagProbe:
    """Measures the lags of the services on demand (the broker side: `BrokerLag`)."""

    def __init__(self, settings: ServiceSettings, http_host: str | None = None) -> None:
        self.bootstrap = settings.kafka_bootstrap_servers
        self.client_options = client_options(settings, "reader")  # read only
        self.targets = targets(settings, http_host)
        self.broker: BrokerLag | None = None

    async def start(self) -> None:
        broker = BrokerLag(self.bootstrap, client_options=self.client_options)
        await broker.start()
        self.broker = broker

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.close()
        self.broker = None

    async def measure(self) -> dict[str, dict[str, Any]]:
        """Every service's lags: {name: {...}} (never raises: errors are reported)."""
        found = await asyncio.gather(*(self._one(t) for t in self.targets))
        return {t.name: state for t, state in zip(self.targets, found, strict=True)}

    async def _one(self, target: Target) -> dict[str, Any]:
        state: dict[str, Any] = {
            "group": target.group,
            "inputs": list(target.inputs),
            "http": f"{target.http_host}:{target.http_port}",
            "checked_at": time.time(),
        }
        state.update(await self._relay(target))
        state.update(await self._consumer_lag(target))
        return state

    async def _relay(self, target: Target) -> dict[str, Any]:
        try:
            reply = await http_get(target.http_host, target.http_port, "/ready")
        except (OSError, TimeoutError, ValueError):
            return {"up": False, "ready": False, "relay_lag": None, "stalled": [], "reasons": []}
        return readiness(reply)

    async def _consumer_lag(self, target: Target) -> dict[str, Any]:
        if self.broker is None:
            return {"consumer_lag": None, "consumer_error": "not connected to Kafka"}
        try:
            lags = await self.broker.measure(target.group, target.inputs)
        except NoInputTopics:
            return {"consumer_lag": None, "consumer_error": "input topics not found"}
        except Exception as exc:  # shown on the page, measured again next time
            return {"consumer_lag": None, "consumer_error": shown(f"{type(exc).__name__}: {exc}")}
        return {
            "consumer_lag": total(lags),
            "input_messages": sum(p.end for p in lags),
            "consumer_error": None,
        }
