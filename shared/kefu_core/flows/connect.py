"""``$connect`` and ``$disconnect``."""

from __future__ import annotations

import logging
from typing import Any

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.chat.events import WebSocketEvent
from kefu_core.deps import Deps
from kefu_core.infra.errors import (
    Forbidden,
    KefuError,
    StoreError,
    Unauthorized,
    Unavailable,
    reason_phrase,
)
from kefu_core.infra.settings import Settings
from kefu_core.product.agent_auth import staff_access
from kefu_core.product.visitor_context import browser_name, country_from
from kefu_core.product.widget_origins import connect_origin_allowed, header
from kefu_core.security.keyring import KeyringUnavailable, keyring_for
from kefu_core.security.roles import STAFF_ROLES
from kefu_core.security.tokens import Identity

__all__ = ["handle_connect", "handle_disconnect", "refuse_unauthenticated"]

logger = logging.getLogger("kefu.flows.connect")


def _status(code: int, message: str) -> dict[str, Any]:
    return {"statusCode": code, "body": message}


def _refuse(error: type[KefuError]) -> dict[str, Any]:
    """A refused handshake: the error's status and its reason phrase (infra.errors)."""
    return _status(error.status, reason_phrase(error))


async def _authenticate(ws: WebSocketEvent, settings: Settings) -> Identity | dict[str, Any]:
    """The token's identity, or the refusal to answer (401; 503 without usable secrets)."""
    try:
        return await keyring_for(settings).verify(ws.query("token"))
    except KeyringUnavailable:
        return _refuse(Unavailable)
    except Unauthorized as exc:
        logger.info("connect refused: %s", exc)
        return _refuse(Unauthorized)


async def refuse_unauthenticated(
    event: dict[str, Any], settings: Settings
) -> dict[str, Any] | None:
    """The refusal of a ``$connect`` whose token does not verify, else None. Needs no store:
    the Lambda function runs it before it opens any connection (a flood of bad tokens costs
    no database connection)."""
    result = await _authenticate(WebSocketEvent.model_validate(event), settings)
    return result if isinstance(result, dict) else None


async def handle_connect(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    """Check the token from the query string and record the connection; 401 leaves no record."""
    ws = WebSocketEvent.model_validate(event)
    identity = await _authenticate(ws, deps.settings)
    if isinstance(identity, dict):
        return identity
    refusal = await _origin_refusal(ws, identity, deps)
    if refusal is not None:
        return refusal
    conversation_id: str | None = None
    try:
        if identity.role in STAFF_ROLES:  # still current, with the role the database gives
            try:
                access = await staff_access(deps, tenant_id=identity.tenant_id,
                                            agent_id=identity.subject, version=identity.version)
            except Unauthorized as exc:
                logger.info("connect refused: %s", exc)
                return _refuse(Unauthorized)
            identity = identity.model_copy(update={"role": access.role, "name": access.name})
        if identity.role == "visitor":  # its open conversation; a page view starts none
            conversation = await deps.conversations.find_open(
                tenant_id=identity.tenant_id, visitor_id=identity.subject
            )
            conversation_id = conversation.id if conversation else None
        ctx = ws.request_context
        await deps.connections.add(
            ConnectionRecord(
                connection_id=ctx.connection_id,
                tenant_id=identity.tenant_id,
                subject=identity.subject,
                role=identity.role,
                name=identity.name,
                conversation_id=conversation_id,
                connected_at=deps.connections.now(),
                source_ip=ctx.identity.source_ip,
                domain_name=ctx.domain_name,
                stage=ctx.stage,
                token_version=identity.version,
                **_visitor_client(ws, identity),
            )
        )
    except StoreError:
        logger.exception("connect failed: store unavailable")
        return _refuse(Unavailable)
    return _status(200, "Connected")


def _visitor_client(ws: WebSocketEvent, identity: Identity) -> dict[str, str]:
    """A visitor's browser and country, from the handshake's headers, for the console."""
    if identity.role != "visitor":
        return {}
    return {"browser": browser_name(header(ws.headers, "user-agent")),
            "country": country_from(ws.headers)}


async def handle_disconnect(event: dict[str, Any], deps: Deps) -> dict[str, Any]:
    ws = WebSocketEvent.model_validate(event)
    await deps.connections.remove(ws.request_context.connection_id)
    return _status(200, "Disconnected")


async def _origin_refusal(
    ws: WebSocketEvent, identity: Identity, deps: Deps
) -> dict[str, Any] | None:
    """403 when the widget key that minted a visitor token is revoked or does not allow the
    page's ``Origin`` (kefu_core.product.widget_origins); None to go on."""
    if identity.role != "visitor" or not identity.widget_key:
        return None
    try:
        allowed = await connect_origin_allowed(deps.widget_keys, widget_key=identity.widget_key,
                                               origin=header(ws.headers, "origin"))
    except StoreError:
        logger.exception("connect failed: store unavailable")
        return _refuse(Unavailable)
    if not allowed:
        logger.info("connect refused: origin not allowed for the widget key")
        return _refuse(Forbidden)
    return None
