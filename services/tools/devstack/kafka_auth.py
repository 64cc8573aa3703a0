"""Authentication and ACLs of the local broker (services/tools/devstack/kafka.py).

With a :class:`BrokerAuth`, the node has no unauthenticated listener left:

- the client and inter-broker listener speaks SASL/SCRAM-SHA-512 only. The credentials are
  written into the metadata log when the storage is formatted (`kafka-storage format
  --add-scram`, KIP-900): the node can authenticate its own inter-broker connections before
  any admin could add a user, and no user is ever added over the network;
- the controller listener speaks SASL/PLAIN, with one user, the node itself, declared in
  its JAAS entry (a KRaft controller cannot check SCRAM: the credentials live in the very
  log it serves). Without it the controller listener would be PLAINTEXT, whose principal is
  ANONYMOUS -- which would then have to be a super user for the broker to register, and
  anyone reaching that port could create topics or ACLs through it (KIP-919 lets admin
  clients talk to controllers);
- KRaft's StandardAuthorizer with `allow.everyone.if.no.acl.found=false` denies whatever no
  ACL allows; the super users are the node itself and the admin principal.

The passwords of a node live in ``run_dir/credentials.json`` (mode 0600) beside its data:
they were formatted into that data, so they are kept as long as it is.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MECHANISM = "SCRAM-SHA-512"
NODE_USER = "mandat-broker"
"""The node's own principal: inter-broker (SCRAM) and broker-to-controller (PLAIN)."""
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CREDENTIALS = "credentials.json"


class KafkaAuthError(RuntimeError):
    """The node's data and the authentication asked for do not go together."""


@dataclass(frozen=True)
class BrokerAuth:
    """Who may log in to a node (SCRAM users, bootstrapped at format time) and who is a
    super user; `node_password` is the node's own secret."""

    users: Mapping[str, str]  # username -> password
    super_users: tuple[str, ...]
    node_password: str = field(repr=False, default="")

    def __post_init__(self) -> None:
        for name, password in (*self.users.items(), (NODE_USER, self.node_password)):
            if not _safe(name) or not _safe(password):
                raise KafkaAuthError(f"unusable credential for {name!r}: [A-Za-z0-9_-] only")

    def properties(self, host: str, port: int, controller_port: int) -> dict[str, str]:
        """server.properties entries replacing the PLAINTEXT listeners."""
        scram_jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required"
            f' username="{NODE_USER}" password="{self.node_password}";'
        )
        plain_jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required"
            f' username="{NODE_USER}" password="{self.node_password}"'
            f' user_{NODE_USER}="{self.node_password}";'
        )
        supers = ";".join(f"User:{u}" for u in (NODE_USER, *self.super_users))
        return {
            "listeners": f"SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://{host}:{port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,"
            "CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": MECHANISM,
            f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config": scram_jaas,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain_jaas,
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": supers,
        }

    def format_arguments(self) -> list[str]:
        """`kafka-storage format` arguments that write every SCRAM credential."""
        users = {NODE_USER: self.node_password, **self.users}
        arguments: list[str] = []
        for name, password in users.items():
            arguments += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return arguments


def _safe(text: str) -> bool:
    """Goes into a JAAS string and a `--add-scram` argument unquoted and unescaped."""
    return bool(text) and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def local_auth(run_dir: Path, users: Iterable[str], super_users: Iterable[str]) -> BrokerAuth:
    """The node's credentials, from ``run_dir/credentials.json`` or made now (0600).

    A node whose data was formatted without them cannot get them any more (they are
    written at format time): that is an error naming the way out, not a silent broker
    without authentication."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CREDENTIALS
    wanted = list(users)
    if path.exists():
        stored = json.loads(path.read_text())
        missing = [u for u in wanted if u not in stored["users"]]
        if missing:
            raise KafkaAuthError(
                f"{run_dir} was formatted without the Kafka users {missing}: remove {run_dir}"
                " (`make clean`) to format it again with them"
            )
        users_of = {u: stored["users"][u] for u in wanted}
        return BrokerAuth(users_of, tuple(super_users), stored["node_password"])
    if (run_dir / "data" / "meta.properties").exists():
        raise KafkaAuthError(
            f"{run_dir} holds a broker formatted without authentication: remove {run_dir}"
            " (`make clean`) to format it again with SCRAM users"
        )
    auth = BrokerAuth({u: new_secret() for u in wanted}, tuple(super_users), new_secret())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"users": dict(auth.users), "node_password": auth.node_password}, out)
    return auth


# ------------------------------------------------------------------ the local stack


def role_usernames() -> dict[str, str]:
    """Each role's Kafka username as the settings name it (MANDAT_KAFKA_<ROLE>_USERNAME)."""
    from services.adapters.kafka.security import ROLES
    from services.adapters.runtime.settings import ServiceSettings

    settings = ServiceSettings()
    return {role: str(getattr(settings, f"kafka_{role}_username")) for role in ROLES}


def stack_auth(run_dir: Path) -> BrokerAuth | None:
    """The local stack's broker credentials (`make up`), or None when
    MANDAT_LOCAL_KAFKA_AUTH=off asks for the old PLAINTEXT broker."""
    if os.environ.get("MANDAT_LOCAL_KAFKA_AUTH", "on").lower() in ("off", "0", "false"):
        return None
    users = role_usernames()
    return local_auth(run_dir, users.values(), [users["admin"]])


def client_endpoints(auth: BrokerAuth | None) -> dict[str, str]:
    """What clients need to log in, as `.run/endpoints.env` entries (MANDAT_KAFKA_*)."""
    if auth is None:
        return {"MANDAT_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    found = {
        "MANDAT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MANDAT_KAFKA_SASL_MECHANISM": MECHANISM,
    }
    for role, user in role_usernames().items():
        found[f"MANDAT_KAFKA_{role.upper()}_USERNAME"] = user
        found[f"MANDAT_KAFKA_{role.upper()}_PASSWORD"] = auth.users[user]
    return found


def login_settings(endpoints: Mapping[str, str]) -> dict[str, Any]:
    """The MANDAT_KAFKA_* entries of `.run/endpoints.env` as ServiceSettings arguments."""
    return {
        key.removeprefix("MANDAT_").lower(): value
        for key, value in endpoints.items()
        if key.startswith("MANDAT_KAFKA_")
    }
