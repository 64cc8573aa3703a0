"""Wiring of the collection service (alinéa 1): its topics, group, store and processor."""

from __future__ import annotations

from faststream import FastStream

from contracts import topics
from services.collection.processor import SERVICE, CollectionProcessor
from services.runtime.outbound import Routes
from services.runtime.service import ServiceRuntime, ServiceSpec
from services.runtime.settings import ServiceSettings


def collection_spec(settings: ServiceSettings) -> ServiceSpec:
    """The collection service as configured by `settings`."""
    return ServiceSpec(
        name=SERVICE,
        schema=settings.collection_schema,
        group_id=settings.collection_group,
        inputs={
            settings.topic_referentiel: topics.REFERENTIEL_EVENT_TYPES,
            settings.topic_cotisations: topics.COTISATIONS_EVENT_TYPES,
        },
        routes=Routes(
            decisions_topic=settings.topic_reglements_cotisations,
            rejections_topic=settings.topic_rejets_collection,
            decision_types=topics.COLLECTION_DECISION_TYPES,
            source=SERVICE,
        ),
        new_processor=CollectionProcessor,
    )


def build_runtime(settings: ServiceSettings | None = None) -> ServiceRuntime:
    settings = settings or ServiceSettings()
    return ServiceRuntime(collection_spec(settings), settings)


def build_app(settings: ServiceSettings | None = None) -> FastStream:
    """The collection service's FastStream app (`faststream run services.collection.app:app`
    style factories, or `mandat collection run`)."""
    return build_runtime(settings).app()
