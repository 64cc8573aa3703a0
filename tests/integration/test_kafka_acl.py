"""Who may publish and read: a broker with SASL/SCRAM and ACLs, as `mandat up` runs it.

The rest of the suite uses a PLAINTEXT broker for speed; this module starts its own
authenticated one (random loopback ports) and proves each refusal, then runs both services
end to end with their own principals. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.protocol.admin import CreateTopicsRequest
from pydantic import SecretStr
from support import (
    Feed,
    affiliation,
    convention,
    cotisation,
    nir,
    organisme,
    prestation,
    read_topics,
)

from services.adapters.kafka.acls import (
    Acl,
    apply_acls,
    extra_grants,
    provision_kafka,
    relay_transactional_id,
)
from services.adapters.kafka.security import ROLES, Role, client_options
from services.adapters.kafka.topics import TopicsMissing
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.lag import BrokerLag, total
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.trust.anchors import read_anchors
from services.adapters.trust.signing import write_key_pair
from services.tools.devstack.kafka import start_kafka, stop_kafka
from services.tools.devstack.kafka_auth import NODE_USER, local_auth

pytestmark = pytest.mark.integration

REFUSED = 20.0  # seconds a refusal may take to come back (a retried metadata request)
USERS = {role: f"mandat-{role}" for role in ROLES}


class SecureBroker:
    """The module's authenticated broker: where it is, its ports and its passwords."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.auth = local_auth(run_dir, USERS.values(), [USERS["admin"]])
        node = start_kafka(run_dir, port=0, auth=self.auth, timeout=90.0)
        self.bootstrap = node.bootstrap
        config = (run_dir / "server.properties").read_text()
        listeners = next(x for x in config.splitlines() if x.startswith("listeners="))
        self.controller = listeners.split("CONTROLLER://", 1)[1].split(",")[0]

    def password(self, role: Role) -> str:
        return self.auth.users[USERS[role]]


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[SecureBroker]:
    run_dir = Path(tempfile.mkdtemp(prefix="mandat-acl-"))
    try:
        broker = SecureBroker(run_dir / "kafka")
        try:
            yield broker
        finally:
            stop_kafka(broker.run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def secure(
    settings: ServiceSettings, secure_broker: SecureBroker, tmp_path: Path
) -> AsyncIterator[ServiceSettings]:
    """This test's settings (own topics, groups, schemas) on the authenticated broker, with
    every role's password; topics and ACLs provisioned by the admin, as `mandat up` does."""
    key, _ = write_key_pair(tmp_path / "anchor.pem")
    passwords = {f"kafka_{r}_password": SecretStr(secure_broker.password(r)) for r in ROLES}
    s = settings.model_copy(
        update={
            "kafka_bootstrap_servers": secure_broker.bootstrap,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "anchor_key_file": str(key),
            "anchor_every_seconds": 0.5,
            **passwords,
        }
    )
    await asyncio.wait_for(provision_kafka(s), 60)
    yield s


def as_role(s: ServiceSettings, role: Role, **changes: Any) -> dict[str, Any]:
    """aiokafka options logging in as `role` (a wrong password with `password=`)."""
    options = client_options(s, role)
    if "password" in changes:
        options["sasl_plain_password"] = changes.pop("password")
    return {"bootstrap_servers": s.kafka_bootstrap_servers, **options, **changes}


async def send_as(s: ServiceSettings, role: Role, topic: str, **producer: Any) -> None:
    """One record on `topic` as `role` (raises what the broker answers)."""
    client = AIOKafkaProducer(**as_role(s, role, request_timeout_ms=10_000, **producer))
    await asyncio.wait_for(client.start(), REFUSED)
    try:
        await asyncio.wait_for(client.send_and_wait(topic, b"{}", key=b"k"), REFUSED)
    finally:
        await client.stop()


class NotVisible(Exception):
    """The broker does not show the topic to this principal (no DESCRIBE right on it)."""


async def read_as(s: ServiceSettings, role: Role, topic: str, group: str | None = None) -> int:
    """Read `topic` from the beginning as `role` (in `group` if given); records seen."""
    consumer = AIOKafkaConsumer(
        **as_role(s, role, group_id=group, enable_auto_commit=False),
        auto_offset_reset="earliest",
    )
    await asyncio.wait_for(consumer.start(), REFUSED)
    try:
        if topic not in await asyncio.wait_for(consumer.topics(), REFUSED):
            raise NotVisible(topic)
        if group is None:
            consumer.assign([TopicPartition(topic, p) for p in range(s.topic_partitions)])
        else:
            consumer.subscribe([topic])
        seen = 0
        for _ in range(4):  # a refused fetch is raised by the next getmany
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), REFUSED)
            seen += sum(len(records) for records in batch.values())
        return seen
    finally:
        await consumer.stop()


async def refused(call: Any, *errors: type[BaseException]) -> BaseException:
    with pytest.raises(errors or (KafkaError,)) as caught:
        await call
    error: BaseException = caught.value
    return error


# --------------------------------------------------------------------- refusals


async def test_upstream_writes_the_inbound_topics_only(secure: ServiceSettings) -> None:
    s = secure
    for topic in (s.topic_referentiel, s.topic_cotisations, s.topic_prestations):
        await send_as(s, "upstream", topic)  # its right
    # a backdated decision, or a fake rejection: not upstream's to write
    for topic in (
        s.topic_reglements_cotisations,
        s.topic_reglements_prestations,
        s.topic_rejets_collection,
        s.topic_audit_anchors,
    ):
        await refused(send_as(s, "upstream", topic), TopicAuthorizationFailedError)
    # nor to read: not a decision (it does not even see that topic), nor what it wrote
    await refused(read_as(s, "upstream", s.topic_reglements_cotisations), NotVisible)
    await refused(read_as(s, "upstream", s.topic_cotisations), TopicAuthorizationFailedError)


async def test_a_reader_reads_what_was_published_and_cannot_write(secure: ServiceSettings) -> None:
    s = secure
    await send_as(s, "upstream", s.topic_cotisations)
    assert await read_as(s, "reader", s.topic_reglements_cotisations) == 0
    # the raw upstream records are the services' to read; the reader only measures their lag
    await refused(read_as(s, "reader", s.topic_cotisations), TopicAuthorizationFailedError)
    async with BrokerLag(
        s.kafka_bootstrap_servers, client_options=client_options(s, "reader")
    ) as lag:
        assert total(await lag.measure(s.collection_group, [s.topic_cotisations])) == 1
    for topic in (s.topic_cotisations, s.topic_reglements_cotisations, s.topic_audit_anchors):
        await refused(send_as(s, "reader", topic), TopicAuthorizationFailedError)
    # nor consume as a service's group (it would move that service's offsets)
    await refused(
        read_as(s, "reader", s.topic_cotisations, group=s.collection_group),
        GroupAuthorizationFailedError,
    )


async def test_the_policy_check_finds_a_grant_beyond_it(secure: ServiceSettings) -> None:
    s = secure
    # on this broker shared by the module's tests, the other tests' bindings (same principals,
    # their own topics) are beyond this test's policy: what matters is what the grant adds
    before = set(await extra_grants(s))
    assert not [g for g in before if s.topic_cotisations in g]
    wildcard = Acl("User:*", "TOPIC", s.topic_cotisations, "READ")
    await apply_acls(s, [wildcard])
    assert set(await extra_grants(s)) - before == {
        f"User:* operation 3 on resource type 2 {s.topic_cotisations!r} (pattern 3)"
    }


async def test_one_service_cannot_act_for_the_other(secure: ServiceSettings) -> None:
    s = secure
    await send_as(s, "collection", s.topic_reglements_cotisations)  # its own topic
    for topic in (s.topic_reglements_prestations, s.topic_rejets_benefits, s.topic_cotisations):
        await refused(send_as(s, "collection", topic), TopicAuthorizationFailedError)
    await refused(read_as(s, "collection", s.topic_prestations), NotVisible)
    await refused(
        read_as(s, "collection", s.topic_referentiel, group=s.benefits_group),
        GroupAuthorizationFailedError,
    )
    # the benefits relay's transactional id: taking it would fence the benefits relay
    await refused(
        send_as(
            s,
            "collection",
            s.topic_reglements_cotisations,
            transactional_id=relay_transactional_id(s, "benefits"),
        ),
        TransactionalIdAuthorizationFailed,
    )


async def test_a_service_creates_no_topic_and_says_which_are_missing(
    secure: ServiceSettings,
) -> None:
    s = secure
    admin = AIOKafkaAdminClient(**as_role(s, "collection"))
    await asyncio.wait_for(admin.start(), REFUSED)
    try:
        response: Any = await asyncio.wait_for(
            admin.create_topics([NewTopic(f"{s.topic_cotisations}.x", 1, 1)]), REFUSED
        )
        codes = [error[1] for error in response.topic_errors]
        assert codes == [TopicAuthorizationFailedError.errno]
    finally:
        await admin.close()
    missing = s.model_copy(update={"topic_rejets_collection": f"{s.topic_rejets_collection}.no"})
    with pytest.raises(TopicsMissing, match=r"\.no"):
        async with build_runtime("collection", missing).running():
            pass


async def test_a_wrong_password_and_no_login_are_refused(
    secure: ServiceSettings, secure_broker: SecureBroker
) -> None:
    s = secure
    wrong = AIOKafkaProducer(**as_role(s, "admin", password="not-the-password"))
    await refused(asyncio.wait_for(wrong.start(), REFUSED), KafkaError)
    await wrong.stop()
    # no login (ANONYMOUS) on the client listener and on the controller listener, both open
    for address in (s.kafka_bootstrap_servers, secure_broker.controller):
        host, port = address.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=5).close()
        anonymous = AIOKafkaAdminClient(bootstrap_servers=address, request_timeout_ms=5000)
        await refused(asyncio.wait_for(anonymous.start(), REFUSED), KafkaError, TimeoutError)
        await anonymous.close()
    # the controller listener takes only the node's own PLAIN login: not the admin's SCRAM
    # one, nor the admin's password over PLAIN
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        options = as_role(s, "admin", sasl_mechanism=mechanism, request_timeout_ms=5000)
        options["bootstrap_servers"] = secure_broker.controller
        controller = AIOKafkaAdminClient(**options)
        await refused(asyncio.wait_for(controller.start(), REFUSED), KafkaError, TimeoutError)
        await controller.close()
    assert NODE_USER not in USERS.values()


async def test_the_controller_listener_creates_nothing_for_an_anonymous_client(
    secure: ServiceSettings, secure_broker: SecureBroker
) -> None:
    """A controller answers CreateTopics itself: on a PLAINTEXT controller listener (the
    broker before logins) this very request created the topic."""
    host, port = secure_broker.controller.rsplit(":", 1)
    conn = await create_conn(host, int(port), request_timeout_ms=5000)  # ApiVersions only
    name = f"{s_prefix(secure)}.anonymous"
    try:
        topic = AIOKafkaAdminClient._convert_new_topic_request(NewTopic(name, 1, 1))
        request = CreateTopicsRequest(
            create_topic_requests=[topic], timeout=5000, validate_only=False
        )
        await refused(asyncio.wait_for(conn.send(request), REFUSED), KafkaError)
    finally:
        conn.close()
    admin = AIOKafkaAdminClient(**as_role(secure, "admin"))
    await asyncio.wait_for(admin.start(), REFUSED)
    try:
        assert name not in await asyncio.wait_for(admin.list_topics(), REFUSED)
    finally:
        await admin.close()


def s_prefix(s: ServiceSettings) -> str:
    return s.topic_referentiel.rsplit(".", 1)[0]


# --------------------------------------------------------------- the services run


async def test_both_services_run_end_to_end_with_their_own_principals(
    secure: ServiceSettings,
) -> None:
    s = secure
    n = nir(7001)
    registry = [
        organisme("OC-A"),
        convention("CNV-A1", "OC-A"),
        convention("CNV-A2", "OC-A", objet="VERSEMENT_PRESTATIONS_ESPECES"),
        affiliation(n, "OC-A"),
    ]
    async with (
        build_runtime("collection", s).running() as collection,
        build_runtime("benefits", s).running() as benefits,
        Feed(s.kafka_bootstrap_servers, **client_options(s, "upstream")) as feed,
    ):
        for fact in registry:
            await feed.send(s.topic_referentiel, fact)
        await feed.send(s.topic_cotisations, cotisation("COT-1", n))
        await feed.send(s.topic_prestations, prestation("PRE-1", n))
        reader = client_options(s, "reader")

        def final(messages: list[Any]) -> bool:
            return any(m.headers.get("event_type") != b"DecisionEnAttente" for m in messages)

        collected, paid = await asyncio.gather(
            read_topics(
                s.kafka_bootstrap_servers, [s.topic_reglements_cotisations], final, 60, **reader
            ),
            read_topics(
                s.kafka_bootstrap_servers, [s.topic_reglements_prestations], final, 60, **reader
            ),
        )
        assert final(collected), [m.headers.get("event_type") for m in collected]
        assert final(paid), [m.headers.get("event_type") for m in paid]
        assert all(m.json["payload"]["nir"] == n for m in collected + paid)
        # the anchorers signed each store's head onto the anchors topic, as their services
        assert collection.anchorer is not None and benefits.anchorer is not None
        for _ in range(60):
            records = await read_anchors(
                s.kafka_bootstrap_servers, s.topic_audit_anchors, client_options=reader
            )
            if {r.key for r in records} >= {b"collection", b"benefits"}:
                break
            await asyncio.sleep(0.5)
        assert {r.key for r in records} >= {b"collection", b"benefits"}
        state = await collection.probe()
        assert state["ready"], state
