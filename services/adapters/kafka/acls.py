"""Who may publish and read what on Kafka: the ACLs of each principal, as data.

The broker denies whatever no ACL allows (`allow.everyone.if.no.acl.found=false`), so this
list *is* the policy (docs/trust.md has it as a table):

- upstream producers write the inbound topics, nothing else (and read nothing);
- each service reads its inbound topics in its own consumer group, writes its own decisions
  and rejections topics (and reads them back: the relay checks their tails), writes and
  reads the anchors topic, and uses its own transactional id (the relay's transactions);
- dashboards and auditors read every topic and see the services' group offsets (lag);
- the admin principal is a super user: it creates the topics and these ACLs
  (:func:`provision_kafka`, `mandat kafka provision`, `mandat up`); services never create
  topics when the broker enforces ACLs.

The same list can be printed as `kafka-acls` commands (`mandat kafka acls`) for an existing
cluster. aiokafka has no ACL call in its admin client, so :func:`apply_acls` sends Kafka's
CreateAcls request itself (v1, all bindings at once; creating an existing binding is a
no-op on the broker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import CreateAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from services.adapters.kafka.security import client_options
from services.adapters.kafka.topics import ensure_topics, size_limits
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog

ResourceType = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID"]
Operation = Literal["READ", "WRITE", "DESCRIBE"]
Pattern = Literal["LITERAL", "PREFIXED"]

# Kafka's wire codes (org.apache.kafka.common.resource / acl enums)
_NAMES: dict[int, ResourceType] = {2: "TOPIC", 3: "GROUP", 5: "TRANSACTIONAL_ID"}
_OPERATIONS: dict[int, Operation] = {3: "READ", 4: "WRITE", 8: "DESCRIBE"}
_PATTERNS: dict[int, Pattern] = {3: "LITERAL", 4: "PREFIXED"}
_RESOURCE = {name: code for code, name in _NAMES.items()}
_OPERATION = {name: code for code, name in _OPERATIONS.items()}
_PATTERN = {name: code for code, name in _PATTERNS.items()}
_ALLOW = 3
_CLI_RESOURCE = {"TOPIC": "--topic", "GROUP": "--group", "TRANSACTIONAL_ID": "--transactional-id"}

UPSTREAM_TRANSACTIONAL_PREFIX = "upstream-"
"""Transactional ids an upstream producer may use (an upstream may publish in transactions)."""


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: `principal` may `operation` on the resource (from any host)."""

    principal: str  # "User:<name>"
    resource: ResourceType
    name: str
    operation: Operation
    pattern: Pattern = "LITERAL"

    def command(self, bootstrap: str, config: str = "admin.properties") -> str:
        """This binding as a `kafka-acls` command line."""
        prefixed = " --resource-pattern-type prefixed" if self.pattern == "PREFIXED" else ""
        return (
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config {config} --add"
            f" --allow-principal {self.principal} --operation {self.operation.capitalize()}"
            f" {_CLI_RESOURCE[self.resource]} {self.name}{prefixed}"
        )


def relay_transactional_id(settings: ServiceSettings, service: str) -> str:
    """The relay's transactional id (services/adapters/kafka/relay.py's default)."""
    return f"mandat-relay-{service}-{settings.schema_of(service)}"


def _user(settings: ServiceSettings, role: str) -> str:
    return f"User:{getattr(settings, f'kafka_{role}_username')}"


def inbound_topics(settings: ServiceSettings) -> dict[str, tuple[str, ...]]:
    """Each service's input topics."""
    return {
        name: tuple(settings.topic(topic) for topic in service.inputs)
        for name, service in catalog.SERVICES.items()
    }


def outbound_topics(settings: ServiceSettings) -> dict[str, tuple[str, str]]:
    """Each service's (decisions, rejections) topics."""
    return {
        name: (settings.topic(service.decisions_topic), settings.topic(service.rejections_topic))
        for name, service in catalog.SERVICES.items()
    }


def acls(settings: ServiceSettings) -> list[Acl]:
    """Every binding the system needs, sorted (the admin needs none: it is a super user)."""
    s = settings
    found: set[Acl] = set()
    upstream = _user(s, "upstream")
    for topic in (s.topic_referentiel, s.topic_cotisations, s.topic_prestations):
        found.add(Acl(upstream, "TOPIC", topic, "WRITE"))
    found.add(Acl(upstream, "TRANSACTIONAL_ID", UPSTREAM_TRANSACTIONAL_PREFIX, "WRITE", "PREFIXED"))
    for service in catalog.SERVICES:
        me = _user(s, service)
        for topic in inbound_topics(s)[service]:
            found.add(Acl(me, "TOPIC", topic, "READ"))
        found.add(Acl(me, "GROUP", s.group_of(service), "READ"))
        for topic in (*outbound_topics(s)[service], s.topic_audit_anchors):
            found.add(Acl(me, "TOPIC", topic, "WRITE"))
            found.add(Acl(me, "TOPIC", topic, "READ"))
        found.add(Acl(me, "TRANSACTIONAL_ID", relay_transactional_id(s, service), "WRITE"))
    reader = _user(s, "reader")
    inbound = {s.topic_referentiel, s.topic_cotisations, s.topic_prestations}
    for topic in (*s.all_topics(), s.topic_audit_anchors):
        # the raw upstream records are read by the services only: the reader measures their
        # lag (end offsets need DESCRIBE) and reads what the system published
        found.add(Acl(reader, "TOPIC", topic, "DESCRIBE" if topic in inbound else "READ"))
    for service in catalog.SERVICES:
        found.add(Acl(reader, "GROUP", s.group_of(service), "DESCRIBE"))
    return sorted(found)


def commands(settings: ServiceSettings, config: str = "admin.properties") -> list[str]:
    """The bindings as `kafka-acls` commands, to run as the admin on an existing cluster."""
    return [acl.command(settings.kafka_bootstrap_servers, config) for acl in acls(settings)]


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """CreateAcls v1 carrying many bindings (aiokafka's own carries one)."""

    API_KEY = 30

    def __init__(self, bindings: Iterable[Acl]) -> None:
        self.bindings = list(bindings)

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(
            [
                (
                    _RESOURCE[a.resource],
                    a.name,
                    _PATTERN[a.pattern],
                    a.principal,
                    "*",
                    _OPERATION[a.operation],
                    _ALLOW,
                )
                for a in self.bindings
            ]
        )


class AclRefused(RuntimeError):
    """The broker refused to create some bindings."""


async def apply_acls(
    settings: ServiceSettings, bindings: Iterable[Acl] | None = None, timeout: float = 30.0
) -> int:
    """Create the bindings (all of :func:`acls` by default) as the admin, and wait until the
    broker enforces them (it applies them from the metadata log a moment after the
    controller accepted them); returns how many."""
    todo = list(acls(settings) if bindings is None else bindings)
    if not todo:
        return 0
    client = AIOKafkaClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings, "admin")
    )
    await client.bootstrap()
    try:
        response: Any = await client.send(client.get_random_node(), _CreateAcls(todo))
        errors = [
            f"{acl.principal} {acl.operation} {acl.resource} {acl.name}: {code} {message}"
            for acl, (code, message) in zip(todo, response.creation_responses, strict=True)
            if code
        ]
        if errors:
            raise AclRefused("; ".join(errors))
        deadline = time.monotonic() + timeout
        while not set(todo) <= await _described(client):
            if time.monotonic() > deadline:
                raise AclRefused(f"the broker does not enforce the ACLs after {timeout} s")
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    return len(todo)


async def described_acls(settings: ServiceSettings) -> set[Acl]:
    """The ALLOW bindings the broker enforces now (read, topic, group and transactional id
    ones: those this module writes), as the admin."""
    client = AIOKafkaClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings, "admin")
    )
    await client.bootstrap()
    try:
        return await _described(client)
    finally:
        await client.close()


_ANY = 1


async def _grants(client: AIOKafkaClient) -> list[tuple[int, str, int, str, int]]:
    """Every ALLOW binding the broker holds: (resource type, name, pattern, principal,
    operation), in Kafka's codes (a DENY only takes rights away)."""
    request = DescribeAclsRequest(_ANY, None, _ANY, None, None, _ANY, _ANY)
    response: Any = await client.send(client.get_random_node(), request)
    if response.error_code:
        raise AclRefused(f"describe ACLs: {response.error_code} {response.error_message}")
    return [
        (kind, name, pattern, principal, operation)
        for kind, name, pattern, entries in response.resources
        for principal, _host, operation, permission in entries
        if permission == _ALLOW
    ]


def _modelled(grant: tuple[int, str, int, str, int]) -> Acl | None:
    kind, name, pattern, principal, operation = grant
    if kind in _NAMES and operation in _OPERATIONS and pattern in _PATTERNS:
        return Acl(principal, _NAMES[kind], name, _OPERATIONS[operation], _PATTERNS[pattern])
    return None


async def _described(client: AIOKafkaClient) -> set[Acl]:
    return {acl for grant in await _grants(client) if (acl := _modelled(grant)) is not None}


async def extra_grants(settings: ServiceSettings) -> list[str]:
    """Grants the broker holds beyond :func:`acls` that touch this system: to one of its
    principals or to everyone (``User:*``), or on one of its resources or on every resource
    (``*``) — any operation, cluster included (e.g. left from an older username, or a
    wildcard someone added). Other systems' bindings on a shared cluster are not ours."""
    expected = set(acls(settings))
    ours = {a.principal for a in expected} | {"User:*"}
    names = {a.name for a in expected} | {"*", "kafka-cluster"}
    client = AIOKafkaClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings, "admin")
    )
    await client.bootstrap()
    try:
        grants = await _grants(client)
    finally:
        await client.close()
    found = []
    for grant in grants:
        kind, name, pattern, principal, operation = grant
        if principal not in ours and name not in names:
            continue
        if _modelled(grant) not in expected:
            found.append(
                f"{principal} operation {operation} on resource type {kind} {name!r}"
                f" (pattern {pattern})"
            )
    return sorted(found)


async def provision_kafka(settings: ServiceSettings) -> list[str]:
    """As the admin: create every topic (with the size limits the services expect) and, when
    the broker enforces ACLs, every binding. Returns the topics created."""
    s = settings
    inbound = [s.topic_referentiel, s.topic_cotisations, s.topic_prestations]
    decisions = [s.topic_reglements_cotisations, s.topic_reglements_prestations]
    rejections = [s.topic_rejets_collection, s.topic_rejets_benefits]
    options = client_options(s, "admin")
    created = await ensure_topics(
        s.kafka_bootstrap_servers,
        s.all_topics(),
        partitions=s.topic_partitions,
        replication_factor=s.topic_replication_factor,
        retention_ms=s.topic_retention_ms,
        max_message_bytes=size_limits(inbound, decisions, rejections, s.topic_max_message_bytes),
        client_options=options,
    )
    created += await ensure_topics(
        s.kafka_bootstrap_servers,
        [s.topic_audit_anchors],
        partitions=1,
        replication_factor=s.topic_replication_factor,
        retention_ms=-1,
        client_options=options,
    )
    if options:
        await apply_acls(s)
    return created
