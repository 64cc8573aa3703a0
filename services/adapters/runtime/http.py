"""The HTTP side of a service: /health, /ready, /metrics and its AsyncAPI document.

A plain ASGI app (no framework): four read-only routes do not need one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class StatusApp:
    """Serves what `probe` reports (a dict with `ready`), metrics and the AsyncAPI JSON."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[dict[str, Any]]],
        metrics: Callable[[], bytes],
        asyncapi: Callable[[], str],
    ) -> None:
        self.probe = probe
        self.metrics = metrics
        self.asyncapi = asyncapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path = scope.get("path", "/")
        if path == "/health":
            await _reply(send, 200, b'{"status":"ok"}', "application/json")
        elif path == "/ready":
            state = await self.probe()
            body = json.dumps(state, sort_keys=True).encode()
            await _reply(send, 200 if state.get("ready") else 503, body, "application/json")
        elif path == "/metrics":
            await _reply(send, 200, self.metrics(), "text/plain; version=0.0.4")
        elif path in ("/asyncapi.json", "/asyncapi"):
            await _reply(send, 200, self.asyncapi().encode(), "application/json")
        else:
            await _reply(send, 404, b'{"error":"not found"}', "application/json")


async def _reply(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
