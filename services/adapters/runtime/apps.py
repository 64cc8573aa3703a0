"""A service of the catalog, wired: its topics, group, store schema and processor."""

from __future__ import annotations

from faststream import FastStream

from services.adapters.kafka.outbound import Routes
from services.adapters.runtime.service import ServiceRuntime, ServiceSpec
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import SERVICES, ServiceDescription


def service_spec(service: str | ServiceDescription, settings: ServiceSettings) -> ServiceSpec:
    """`service` (a name or its description) as `settings` configure it."""
    d = SERVICES[service] if isinstance(service, str) else service
    return ServiceSpec(
        name=d.name,
        schema=settings.schema_of(d.name),
        group_id=settings.group_of(d.name),
        inputs={settings.topic(topic): types for topic, types in d.inputs.items()},
        routes=Routes(
            decisions_topic=settings.topic(d.decisions_topic),
            rejections_topic=settings.topic(d.rejections_topic),
            decision_types=d.decision_types,
            source=d.name,
        ),
        new_processor=lambda view=None: d.new_processor(view=view),
    )


def build_runtime(service: str, settings: ServiceSettings | None = None) -> ServiceRuntime:
    """The runtime of `service` ("collection" or "benefits")."""
    settings = settings or ServiceSettings()
    return ServiceRuntime(service_spec(service, settings), settings)


def build_app(service: str, settings: ServiceSettings | None = None) -> FastStream:
    """`service`'s FastStream application (what `mandat <service> run` serves)."""
    return build_runtime(service, settings).app()
