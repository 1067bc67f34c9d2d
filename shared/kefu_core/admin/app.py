"""The admin HTTP API (FastAPI; OpenAPI docs at ``/docs`` and ``/redoc``, served without a
CDN): the app factory assembles the
routers (:mod:`kefu_core.admin.routers`, one per resource), the middleware and the error
handlers (:mod:`kefu_core.admin.errors`).

Public: ``GET /healthz``; ``POST /v1/visitor-token`` (a widget key, optionally with the signed
identity of a logged-in customer, buys a visitor token); ``POST /v1/agent/login`` (tenant,
e-mail and password buy a short-lived agent token, throttled per e-mail and source address).
Signed-in staff: ``POST /v1/agent/refresh`` (a fresh token while access is unchanged) and
``POST /v1/agent/sign-out`` (revokes every token of the caller).

Agents and admins of a tenant (``/v1/me``, ``/v1/conversations...``, ``/v1/offline-messages``)
and admins only (``/v1/admin/...``: agents, widget keys, identity secret, settings, prompts,
engines, knowledge base, CSAT, audit log). The super-admin creates tenants (``/v1/tenants``).
Every route is tenant-scoped by the caller's token and every change is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from kefu_core.admin.cors import SplitCorsMiddleware
from kefu_core.admin.dependencies import DepsProvider
from kefu_core.admin.errors import install_error_handlers
from kefu_core.admin.routers import ROUTERS, TAGS
from kefu_core.admin.routers.knowledge_files import UPLOAD_PATH
from kefu_core.admin.routers.prompts import PROMPT_MAX_BODY_BYTES
from kefu_core.admin.routers.workbench import COMPARE_PATH, DRAFT_PATH
from kefu_core.deps import Deps
from kefu_core.infra.secret_settings import get_settings
from kefu_core.infra.settings import Settings
from kefu_core.security.http_limits import BodyLimit, BodyLimitMiddleware

__all__ = ["DOCS_ASSETS", "DepsProvider", "body_limits", "create_admin_app"]

# /docs (Swagger UI) and /redoc load their scripts and styles from here: the pinned copies the
# fastapi-offline package ships, so the docs work on a machine without internet.
DOCS_ASSETS = "/docs/assets"
# Swagger UI's online validator badge would send the document to validator.swagger.io: off.
SWAGGER_UI: dict[str, Any] = {"validatorUrl": None}


async def _lambda_deps() -> Deps:
    from kefu_core.lambda_runtime import get_deps

    return await get_deps()


def create_admin_app(
    settings: Settings | None = None, *, deps_provider: DepsProvider | None = None
) -> FastAPI:
    """The admin API of ``settings`` (the environment's by default), its stores from
    ``deps_provider`` (the Lambda container's by default; the gateway passes its own)."""
    config = settings or get_settings()
    app = FastAPIOffline(
        title="Kefu admin API", version="0.2.0", docs_url="/docs", redoc_url="/redoc",
        static_url=DOCS_ASSETS, swagger_ui_parameters=SWAGGER_UI, openapi_tags=TAGS,
        description="Tenants, agents, widget keys, settings, prompts, engines, knowledge base, "
                    "conversations, CSAT and the audit log. Bearer tokens from "
                    "/v1/agent/login (**Authorize** in /docs); every route is scoped to the "
                    "token's tenant.",
    )
    app.state.settings = config
    app.state.deps_provider = deps_provider or _lambda_deps
    # Outermost last: CORS wraps the body limit, so a 413 carries the CORS headers too.
    app.add_middleware(BodyLimitMiddleware, **body_limits(config))
    app.add_middleware(SplitCorsMiddleware, staff_origins=config.admin_allowed_origins)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


def body_limits(config: Settings) -> dict[str, Any]:
    """The admin API's request body limits (security.http_limits): knowledge-base documents,
    prompts, and every other (JSON) route."""
    return {
        "default_max_bytes": config.http_max_body_bytes,
        "limits": [
            BodyLimit(path="/v1/admin/knowledge", methods=frozenset({"POST"}),
                      max_bytes=config.knowledge_max_body_bytes),
            # a file with its multipart framing (the file itself a little less)
            BodyLimit(path=UPLOAD_PATH, methods=frozenset({"POST"}),
                      max_bytes=config.knowledge_max_body_bytes),
            BodyLimit(path="/v1/admin/prompts/[^/]+", methods=frozenset({"PUT"}),
                      max_bytes=max(PROMPT_MAX_BODY_BYTES, config.http_max_body_bytes)),
            # the workbench's draft (and a compared draft) carries a whole prompt
            BodyLimit(path=f"{DRAFT_PATH}|{COMPARE_PATH}", methods=frozenset({"PUT", "POST"}),
                      max_bytes=max(PROMPT_MAX_BODY_BYTES, config.http_max_body_bytes)),
        ],
    }
