"""Preparing the services' stores as their owner: migrations and each service's login role.

What `mandat migrate` runs, and what the tools that start services themselves (the demo, the
benchmarks, `make up`, the tests) run first, on the owner's connection (`DATABASE_URL`).
"""

from __future__ import annotations

import asyncpg
from pydantic import SecretStr

from services.adapters.eventstore.roles import new_password, provision
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog

SERVICES = tuple(catalog.SERVICES)


async def provision_services(
    settings: ServiceSettings, services: tuple[str, ...] = SERVICES
) -> ServiceSettings:
    """Migrate each service's schema and set its login role's password: the one configured,
    or a new one. Returns the settings with the passwords the services must use."""
    update: dict[str, SecretStr] = {}
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        for service in services:
            configured = getattr(settings, f"{service}_db_password")
            password = configured.get_secret_value() if configured else new_password()
            await provision(conn, settings.schema_of(service), password, settings.store_shards)
            update[f"{service}_db_password"] = SecretStr(password)
    finally:
        await conn.close()
    return settings.model_copy(update=update)
