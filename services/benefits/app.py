"""Wiring of the benefits service (alinéa 2): its topics, group, store and processor."""

from __future__ import annotations

from faststream import FastStream

from contracts import topics
from services.benefits.processor import SERVICE, BenefitsProcessor
from services.runtime.outbound import Routes
from services.runtime.service import ServiceRuntime, ServiceSpec
from services.runtime.settings import ServiceSettings


def benefits_spec(settings: ServiceSettings) -> ServiceSpec:
    """The benefits service as configured by `settings`."""
    return ServiceSpec(
        name=SERVICE,
        schema=settings.benefits_schema,
        group_id=settings.benefits_group,
        inputs={
            settings.topic_referentiel: topics.REFERENTIEL_EVENT_TYPES,
            settings.topic_prestations: topics.PRESTATIONS_EVENT_TYPES,
        },
        routes=Routes(
            decisions_topic=settings.topic_reglements_prestations,
            rejections_topic=settings.topic_rejets_benefits,
            decision_types=topics.BENEFITS_DECISION_TYPES,
            source=SERVICE,
        ),
        new_processor=BenefitsProcessor,
    )


def build_runtime(settings: ServiceSettings | None = None) -> ServiceRuntime:
    settings = settings or ServiceSettings()
    return ServiceRuntime(benefits_spec(settings), settings)


def build_app(settings: ServiceSettings | None = None) -> FastStream:
    """The benefits service's FastStream app."""
    return build_runtime(settings).app()
