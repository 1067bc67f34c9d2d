"""Roles of the admin API and the token secrets it signs with.

Roles: ``visitor`` (widget), ``agent`` (console), ``admin`` (a tenant's administrator) and the
super-admin (an ``admin`` of the reserved ``_root`` tenant), who only manages tenants. Every
tenant-scoped route takes the tenant from the token, never from the request, so a token of
one tenant cannot name another tenant's data. The checks themselves are FastAPI dependencies
(:mod:`kefu_core.admin.dependencies`).
"""

from __future__ import annotations

from fastapi import HTTPException

from kefu_core.infra.errors import Unavailable
from kefu_core.infra.settings import Settings
from kefu_core.security.keyring import KeyringUnavailable, keyring_for
from kefu_core.security.roles import STAFF_ROLES, ActorType, Role
from kefu_core.security.tokens import Identity

__all__ = ["ADMIN", "AGENT", "STAFF", "SUPER", "actor_type", "signing_secrets", "unavailable"]

AGENT: frozenset[Role] = STAFF_ROLES
ADMIN: frozenset[Role] = frozenset({"admin"})
SUPER: frozenset[Role] = frozenset({"super"})
STAFF: frozenset[Role] = STAFF_ROLES | SUPER  # anyone signed in, the super-admin included


def unavailable(exc: KeyringUnavailable) -> HTTPException:
    # The keyring logged why; the caller only learns that the service cannot answer.
    return HTTPException(status_code=Unavailable.status, detail=Unavailable.detail)


async def signing_secrets(settings: Settings) -> list[str]:
    """The secrets to sign a new token with (503 when the keyring has none to use)."""
    try:
        return await keyring_for(settings).signing_secrets()
    except KeyringUnavailable as exc:
        raise unavailable(exc) from exc


def actor_type(identity: Identity) -> ActorType:
    """How the audit log names the caller."""
    return "admin" if identity.role == "admin" else "agent"
