"""The routes a FastAPI app serves, routers included.

Since FastAPI 0.137 ``app.routes`` holds one opaque entry per included router instead of its
routes, so reading ``app.routes`` alone silently finds nothing behind ``include_router``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

__all__ = ["api_routes"]


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every ``(METHOD, path)`` of the app's API routes (HEAD and OPTIONS left out). Fails
    when a documented operation is missing, so a change of FastAPI's routing cannot make the
    list quietly shorter."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path:
            found += [(m, context.path) for m in sorted(route.methods - {"HEAD", "OPTIONS"})]
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= set(found), f"routes not enumerated: {documented - set(found)}"
    return found
