"""The ``SchemaMigration`` CloudFormation custom resource: migrations run at deploy time.

CloudFormation invokes ``MigrateFunction`` (in the stack's VPC, with the functions' database
settings) when the resource is created and whenever one of its properties changes: the
template passes the core and memory layer versions, so every deploy that ships new code, and
with it possibly new migrations, runs :func:`kefu_core.infra.schema.apply_schema` before the other
functions are updated (they depend on the resource). ``Delete`` changes nothing: the data stays.

The function answers CloudFormation by ``PUT``-ting the documented response to the event's
pre-signed ``ResponseURL`` (``SUCCESS`` or ``FAILED`` with a reason, which CloudFormation
shows and which fails and rolls back the deploy). The reason names the error type and a short
message, never the database URL.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from typing import Any

from kefu_core.infra.secret_settings import get_settings

__all__ = ["PHYSICAL_ID", "handle_custom_resource"]

logger = logging.getLogger("kefu.deploy_migrations")
PHYSICAL_ID = "kefu-schema"


async def _apply() -> list[str]:
    from kefu_core.answers.memory import embedding_dim
    from kefu_core.infra.db import open_pool
    from kefu_core.infra.schema import apply_schema

    settings = get_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    pool = await open_pool(settings.database_url, min_size=1, max_size=1, timeout_s=30)
    try:
        return await apply_schema(pool, embedding_dim=embedding_dim(settings))
    finally:
        await pool.close()


def _respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    url = str(event.get("ResponseURL", ""))
    # CloudFormation's pre-signed https URL; kefu local answers on loopback.
    if not url.startswith(("https://", "http://127.0.0.1:")):
        raise ValueError("ResponseURL must be CloudFormation's https:// URL")
    body = json.dumps({
        "Status": status,
        "Reason": reason[:1000],
        "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": data,
    }).encode()
    request = urllib.request.Request(
        url, data=body, method="PUT",
        headers={"content-type": "", "content-length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _reason(exc: BaseException) -> str:
    text = re.sub(r"\S+://\S+", "<url>", str(exc))[:500]
    return f"{type(exc).__name__}: {text}"


def handle_custom_resource(event: dict[str, Any], run: Any) -> dict[str, Any]:
    """Handle one custom-resource event; ``run`` runs a coroutine to completion."""
    kind = event.get("RequestType")
    try:
        if kind in ("Create", "Update"):
            applied: list[str] = run(_apply())
            logger.info("schema migrated", extra={"applied": applied})
            data = {"Applied": ",".join(applied) or "none"}
        else:  # Delete: the data and its schema stay
            data = {}
    except Exception as exc:
        logger.exception("schema migration failed")
        _respond(event, "FAILED", f"migrations failed: {_reason(exc)}", {})
        return {"status": "FAILED"}
    _respond(event, "SUCCESS", "ok", data)
    return {"status": "SUCCESS", **data}
