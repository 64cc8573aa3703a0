"""How every Kafka client of the system logs in: one function from the settings.

A client names the role it acts for -- a service (`collection`, `benefits`), the upstream
producers (`upstream`), the dashboards and auditors (`reader`) or the operator's tools
(`admin`) -- and gets the keyword arguments for aiokafka, or FastStream's `security` object.
With `MANDAT_KAFKA_SECURITY_PROTOCOL=PLAINTEXT` (the default, the tests' broker) there is no
login at all; with `SASL_PLAINTEXT` each role logs in as its own principal, whose rights the
broker's ACLs restrict (services/adapters/kafka/acls.py). A role without a password is an
error, not a silent anonymous connection.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from services.adapters.runtime.settings import ServiceSettings

Role = Literal["collection", "benefits", "upstream", "reader", "admin"]
ROLES: tuple[Role, ...] = ("collection", "benefits", "upstream", "reader", "admin")


class KafkaCredentialsMissing(RuntimeError):
    """Authentication is on and the role has no password: refuse to connect without one."""


def secured(settings: ServiceSettings) -> bool:
    """Whether clients log in (and the broker is expected to enforce ACLs)."""
    return settings.kafka_security_protocol != "PLAINTEXT"


def role_of(service: str) -> Role:
    """The role a service's own clients act for."""
    if service not in ("collection", "benefits"):
        raise ValueError(f"no Kafka role for service {service!r}")
    return "collection" if service == "collection" else "benefits"


def credentials(settings: ServiceSettings, role: Role) -> tuple[str, str]:
    """(username, password) of the role's principal."""
    user = getattr(settings, f"kafka_{role}_username")
    secret = getattr(settings, f"kafka_{role}_password")
    if secret is None:
        raise KafkaCredentialsMissing(
            f"Kafka authentication is on ({settings.kafka_security_protocol}) and the {role}"
            f" role has no password: set MANDAT_KAFKA_{role.upper()}_PASSWORD"
        )
    return str(user), str(secret.get_secret_value())


def client_options(settings: ServiceSettings, role: Role) -> dict[str, Any]:
    """Keyword arguments for an aiokafka producer, consumer, admin or client acting for
    `role` (empty when the broker takes no login)."""
    if not secured(settings):
        return {}
    user, password = credentials(settings, role)
    options: dict[str, Any] = {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        options["ssl_context"] = ssl.create_default_context()
    return options


def faststream_security(settings: ServiceSettings, role: Role) -> BaseSecurity | None:
    """The same login as FastStream's `security` object, for a `KafkaBroker`."""
    if not secured(settings):
        return None
    user, password = credentials(settings, role)
    use_ssl = settings.kafka_security_protocol == "SASL_SSL"
    context = ssl.create_default_context() if use_ssl else None
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    kind = kinds[settings.kafka_sasl_mechanism]
    return kind(user, password, ssl_context=context, use_ssl=use_ssl)
