"""Typed settings, read once from the environment (and `.run/endpoints.env` when present)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import topics
from services.domain import catalog


class ServiceSettings(BaseSettings):
    """What every service needs: endpoints, topic names and how topics are created.

    Endpoints are read from `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` (what `make up`
    writes); everything else from `MANDAT_*`.
    """

    model_config = SettingsConfigDict(
        env_prefix="MANDAT_", env_file=".run/endpoints.env", extra="ignore", frozen=True
    )

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MANDAT_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres:postgres@127.0.0.1:5432/mandat"),
        validation_alias=AliasChoices("DATABASE_URL", "MANDAT_DATABASE_URL"),
    )
    # Each service logs in as its own role (`mandat migrate` creates it, with this password);
    # DATABASE_URL says where the database is, and is the owner's login for `mandat migrate`
    # and the tools.
    collection_db_password: SecretStr | None = None
    benefits_db_password: SecretStr | None = None

    # Kafka authentication (services/adapters/kafka/security.py, docs/trust.md): PLAINTEXT
    # (no login, the tests' broker) or SASL_PLAINTEXT, as one principal per role
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_collection_username: str = "mandat-collection"
    kafka_collection_password: SecretStr | None = None
    kafka_benefits_username: str = "mandat-benefits"
    kafka_benefits_password: SecretStr | None = None
    kafka_upstream_username: str = "mandat-upstream"  # writes the inbound topics only
    kafka_upstream_password: SecretStr | None = None
    kafka_reader_username: str = "mandat-reader"  # dashboards and auditors: read only
    kafka_reader_password: SecretStr | None = None
    kafka_admin_username: str = "mandat-admin"  # topics and ACLs; operator tools
    kafka_admin_password: SecretStr | None = None

    topic_referentiel: str = topics.REFERENTIEL
    topic_cotisations: str = topics.COTISATIONS
    topic_prestations: str = topics.PRESTATIONS
    topic_reglements_cotisations: str = topics.REGLEMENTS_COTISATIONS
    topic_reglements_prestations: str = topics.REGLEMENTS_PRESTATIONS
    topic_rejets_collection: str = topics.REJETS_COLLECTION
    topic_rejets_benefits: str = topics.REJETS_BENEFITS
    topic_audit_replay: str = topics.AUDIT_REPLAY

    topic_partitions: int = Field(3, ge=1)
    topic_replication_factor: int = Field(1, ge=1)
    topic_retention_ms: int = Field(-1, ge=-1)  # -1: keep forever (these topics are a record)
    # max.message.bytes of the inbound topics; rejection topics get 64 KiB more (topics.py)
    topic_max_message_bytes: int = Field(1_048_576, ge=65_536)

    collection_schema: str = "collection"
    benefits_schema: str = "benefits"
    collection_group: str = "collection"
    # shards of a new store (`mandat migrate` records it; services read what is recorded;
    # unset: as recorded, else 1): 1 is one store in the service's schema; N > 1 splits it
    # by NIR, best a multiple of topic_partitions (each instance then writes the shards of
    # its partitions only)
    store_shards: int | None = Field(None, ge=1, le=1024)
    benefits_group: str = "benefits"

    batch_max_records: int = Field(500, ge=1)
    pool_size: int = Field(4, ge=2)
    stall_after_seconds: float = Field(30.0, gt=0)  # no progress with work in hand: not ready
    http_host: str = "127.0.0.1"  # 0.0.0.0 in a container
    collection_http_host: str = "127.0.0.1"  # where the dashboard finds each service
    benefits_http_host: str = "127.0.0.1"
    collection_http_port: int = 8081
    benefits_http_port: int = 8082
    dashboard_http_port: int = 8080

    # what a service process measures for its metrics (services/adapters/runtime/serve.py)
    lag_every_seconds: float = Field(10.0, gt=0)  # consumer lag, read from the broker
    chain_check_rows_per_second: float = Field(1000.0, ge=0)  # rolling chain check; 0: off

    # signed anchors of each store (services/adapters/trust/anchorer.py, docs/trust.md)
    anchor_key_file: str | None = None  # Ed25519 private key (PEM, mode 0600); None: none
    anchor_every_events: int = Field(1000, ge=1)  # an anchor every N new rows...
    anchor_every_seconds: float = Field(10.0, gt=0)  # ...or every T seconds, if the head moved
    topic_audit_anchors: str = "rsi.audit.ancrages.v1"  # kept forever, key = service name

    # traces (mandat/adapters/runtime/tracing.py): "console" logs each span as a JSON line, "otlp"
    # sends them to `otlp_endpoint` (OTLP over HTTP; None: OTEL_EXPORTER_OTLP_* or
    # http://localhost:4318/v1/traces)
    trace_exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)  # share of batches traced

    @classmethod
    def topics_under(cls, prefix: str) -> dict[str, str]:
        """Every topic setting (`topic_<name>`) as `<prefix>.<name>`: the keyword arguments
        that give a test or a benchmark run topics of its own."""
        return {
            name: f"{prefix}.{name.removeprefix('topic_')}"
            for name, field in cls.model_fields.items()
            if name.startswith("topic_") and field.annotation is str
        }

    def topic(self, contract_name: str) -> str:
        """The configured name of the contract's topic `contract_name` (a default name of
        :mod:`contracts.topics`, as the service catalog names its topics)."""
        names = {
            topics.REFERENTIEL: self.topic_referentiel,
            topics.COTISATIONS: self.topic_cotisations,
            topics.PRESTATIONS: self.topic_prestations,
            topics.REGLEMENTS_COTISATIONS: self.topic_reglements_cotisations,
            topics.REGLEMENTS_PRESTATIONS: self.topic_reglements_prestations,
            topics.REJETS_COLLECTION: self.topic_rejets_collection,
            topics.REJETS_BENEFITS: self.topic_rejets_benefits,
            topics.AUDIT_REPLAY: self.topic_audit_replay,
        }
        return names[contract_name]

    def _of(self, service: str, what: str) -> Any:
        if service not in catalog.SERVICES:
            raise ValueError(f"unknown service {service!r}")
        return getattr(self, f"{service}_{what}")

    def schema_of(self, service: str) -> str:
        """The PostgreSQL schema of `service`'s store."""
        return str(self._of(service, "schema"))

    def group_of(self, service: str) -> str:
        """The Kafka consumer group of `service`."""
        return str(self._of(service, "group"))

    def http_port_of(self, service: str) -> int:
        return int(self._of(service, "http_port"))

    def http_host_of(self, service: str) -> str:
        """Where the dashboard finds `service`'s HTTP status."""
        return str(self._of(service, "http_host"))

    def login(self, service: str) -> tuple[str, str]:
        """(user, password) the service connects as: its own role, never the owner."""
        from services.adapters.eventstore.roles import service_role

        secret: SecretStr | None = self._of(service, "db_password")
        if secret is None:
            raise RuntimeError(
                f"no password for the {service} service's database role: run `mandat migrate`"
                f" as the owner and set MANDAT_{service.upper()}_DB_PASSWORD"
            )
        return service_role(self.schema_of(service)), secret.get_secret_value()

    def all_topics(self) -> list[str]:
        """Every topic the system reads or writes."""
        return [
            self.topic_referentiel,
            self.topic_cotisations,
            self.topic_prestations,
            self.topic_reglements_cotisations,
            self.topic_reglements_prestations,
            self.topic_rejets_collection,
            self.topic_rejets_benefits,
            self.topic_audit_replay,
        ]
