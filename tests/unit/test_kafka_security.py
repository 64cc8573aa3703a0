"""Kafka logins from the settings, the ACL policy, and the local broker's SASL config."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faststream.security import SASLScram256, SASLScram512
from pydantic import SecretStr

from services.adapters.kafka.acls import Acl, acls, commands, relay_transactional_id
from services.adapters.kafka.relay import Relay
from services.adapters.kafka.security import (
    ROLES,
    KafkaCredentialsMissing,
    client_options,
    faststream_security,
    secured,
)
from services.adapters.runtime.settings import ServiceSettings
from services.tools.devstack.kafka import _server_properties
from services.tools.devstack.kafka_auth import (
    NODE_USER,
    BrokerAuth,
    KafkaAuthError,
    client_endpoints,
    local_auth,
    login_settings,
)

pytestmark = pytest.mark.unit


def sasl(**changes: Any) -> ServiceSettings:
    passwords = {f"kafka_{r}_password": SecretStr(f"pw-{r}") for r in ROLES}
    return ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT", **(passwords | changes))


def test_plaintext_means_no_login_at_all() -> None:
    s = ServiceSettings(kafka_security_protocol="PLAINTEXT")
    assert not secured(s)
    assert all(client_options(s, role) == {} for role in ROLES)
    assert faststream_security(s, "collection") is None


def test_each_role_logs_in_as_its_own_principal() -> None:
    s = sasl()
    seen = set()
    for role in ROLES:
        options = client_options(s, role)
        assert options["security_protocol"] == "SASL_PLAINTEXT"
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_password"] == f"pw-{role}"
        seen.add(options["sasl_plain_username"])
    assert len(seen) == len(ROLES)
    security = faststream_security(s, "benefits")
    assert isinstance(security, SASLScram512)
    assert (security.username, security.password) == ("mandat-benefits", "pw-benefits")
    other = faststream_security(sasl(kafka_sasl_mechanism="SCRAM-SHA-256"), "collection")
    assert isinstance(other, SASLScram256)


def test_a_role_without_a_password_is_refused_not_anonymous() -> None:
    s = sasl(kafka_reader_password=None)
    with pytest.raises(KafkaCredentialsMissing, match="MANDAT_KAFKA_READER_PASSWORD"):
        client_options(s, "reader")
    with pytest.raises(KafkaCredentialsMissing):
        faststream_security(s, "reader")


def _rights(s: ServiceSettings, user: str) -> set[tuple[str, str, str]]:
    return {(a.resource, a.name, a.operation) for a in acls(s) if a.principal == f"User:{user}"}


def test_the_policy_upstream_writes_inbound_only_and_reads_nothing() -> None:
    s = ServiceSettings()
    rights = _rights(s, "mandat-upstream")
    topics = {(name, op) for kind, name, op in rights if kind == "TOPIC"}
    inbound = {s.topic_referentiel, s.topic_cotisations, s.topic_prestations}
    assert topics == {(t, "WRITE") for t in inbound}


def test_the_policy_each_service_writes_only_its_own_outputs() -> None:
    s = ServiceSettings()
    own = {
        "collection": {s.topic_reglements_cotisations, s.topic_rejets_collection},
        "benefits": {s.topic_reglements_prestations, s.topic_rejets_benefits},
    }
    for service, outputs in own.items():
        rights = _rights(s, f"mandat-{service}")
        written = {name for kind, name, op in rights if kind == "TOPIC" and op == "WRITE"}
        assert written == outputs | {s.topic_audit_anchors}
        groups = {name for kind, name, _ in rights if kind == "GROUP"}
        assert groups == {s.collection_group if service == "collection" else s.benefits_group}
        ids = {name for kind, name, _ in rights if kind == "TRANSACTIONAL_ID"}
        assert ids == {relay_transactional_id(s, service)}


def test_the_policy_readers_write_nothing() -> None:
    s = ServiceSettings()
    rights = _rights(s, "mandat-reader")
    assert {op for _, _, op in rights} <= {"READ", "DESCRIBE"}
    assert {name for kind, name, _ in rights if kind == "TOPIC"} == {
        *s.all_topics(),
        s.topic_audit_anchors,
    }
    assert _rights(s, "mandat-admin") == set()  # a super user: no ACL needed


def test_the_relays_transactional_id_is_the_one_the_acls_allow() -> None:
    s = ServiceSettings(collection_schema="c_x")
    store: Any = SimpleNamespace(schema="c_x")
    unused: Any = None
    relay = Relay(store, unused, unused, "127.0.0.1:1", name="collection")
    assert relay.transactional_id == relay_transactional_id(s, "collection")


def test_the_acls_print_as_kafka_acls_commands() -> None:
    lines = commands(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS="kafka:9092"), "a.properties")
    assert len(lines) == len(acls(ServiceSettings()))
    assert all(line.startswith("kafka-acls.sh --bootstrap-server kafka:9092") for line in lines)
    prefixed = Acl("User:u", "TRANSACTIONAL_ID", "p-", "WRITE", "PREFIXED")
    assert prefixed.command("b:1").endswith(
        "--transactional-id p- --resource-pattern-type prefixed"
    )


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def test_an_authenticated_node_has_no_plaintext_listener_and_denies_by_default() -> None:
    auth = BrokerAuth({"mandat-admin": "a"}, ("mandat-admin",), "node-secret")
    props = _props(_server_properties(Path("/x"), 1, 2, auth=auth))
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_PLAINTEXT://", "")
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert "ANONYMOUS" not in props["super.users"]
    assert props["super.users"] == f"User:{NODE_USER};User:mandat-admin"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    arguments = auth.format_arguments()
    assert arguments[1::2] == [
        f"SCRAM-SHA-512=[name={NODE_USER},password=node-secret]",
        "SCRAM-SHA-512=[name=mandat-admin,password=a]",
    ]
    plain = _props(_server_properties(Path("/x"), 1, 2))
    assert "authorizer.class.name" not in plain


def test_a_credential_that_would_break_the_config_is_refused() -> None:
    with pytest.raises(KafkaAuthError):
        BrokerAuth({"u": 'x";evil'}, (), "n")
    with pytest.raises(KafkaAuthError):
        BrokerAuth({"u,v": "x"}, (), "n")


def test_local_credentials_are_kept_private_and_reused(tmp_path: Path) -> None:
    first = local_auth(tmp_path / "k", ["a", "b"], ["a"])
    path = tmp_path / "k" / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    again = local_auth(tmp_path / "k", ["a", "b"], ["a"])
    assert again.users == first.users and again.node_password == first.node_password
    assert json.loads(path.read_text())["users"] == dict(first.users)
    with pytest.raises(KafkaAuthError, match="formatted without the Kafka users"):
        local_auth(tmp_path / "k", ["a", "c"], ["a"])


def test_a_node_formatted_without_authentication_is_not_silently_reused(tmp_path: Path) -> None:
    (tmp_path / "k" / "data").mkdir(parents=True)
    (tmp_path / "k" / "data" / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(KafkaAuthError, match="without authentication"):
        local_auth(tmp_path / "k", ["a"], ["a"])


def test_the_endpoints_give_back_the_settings_they_were_made_from(tmp_path: Path) -> None:
    auth = local_auth(tmp_path, [f"mandat-{r}" for r in ROLES], ["mandat-admin"])
    s = ServiceSettings(**login_settings(client_endpoints(auth)))
    assert secured(s)
    for role in ROLES:
        assert client_options(s, role)["sasl_plain_password"] == auth.users[f"mandat-{role}"]
    assert not secured(ServiceSettings(**login_settings(client_endpoints(None))))
