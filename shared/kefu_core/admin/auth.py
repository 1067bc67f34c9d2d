"""Who may call an admin route: bearer tokens (security.tokens) checked against a role set.

Roles: ``visitor`` (widget), ``agent`` (console), ``admin`` (a tenant's administrator) and the
super-admin (an ``admin`` of the reserved ``_root`` tenant), who only manages tenants. Every
tenant-scoped route takes the tenant from the token, never from the request, so a token of
one tenant cannot name another tenant's data.

A staff token must also still be current (kefu_core.product.agent_auth): its version must match the
agent's row, and the role is the row's, so deactivation, a role change, a new password or
"sign out everywhere" take effect on the next request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from kefu_core.infra.errors import Unauthorized
from kefu_core.infra.settings import Settings
from kefu_core.product.agent_auth import staff_access
from kefu_core.product.tenants import ROOT_TENANT
from kefu_core.security.keyring import KeyringUnavailable, keyring_for
from kefu_core.security.tokens import Identity

__all__ = ["ADMIN", "AGENT", "STAFF", "SUPER", "Principal", "require", "signing_secrets"]

AGENT = frozenset({"agent", "admin"})
ADMIN = frozenset({"admin"})
SUPER = frozenset({"super"})
STAFF = frozenset({"agent", "admin", "super"})  # anyone signed in, the super-admin included


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _unavailable(exc: KeyringUnavailable) -> HTTPException:
    # The keyring logged why; the caller only learns that the service cannot answer.
    return HTTPException(status_code=503, detail="temporarily unavailable")


async def signing_secrets(settings: Settings) -> list[str]:
    """The secrets to sign a new token with (503 when the keyring has none to use)."""
    try:
        return await keyring_for(settings).signing_secrets()
    except KeyringUnavailable as exc:
        raise _unavailable(exc) from exc


def require(roles: frozenset[str]) -> Callable[[Request], Awaitable[Identity]]:
    """A FastAPI dependency: the caller's identity when its role is in ``roles``.

    401 without a valid token; 403 with a valid token of another role (or a super-admin
    token on tenant routes, and a tenant token on super-admin routes).
    """

    async def dependency(request: Request) -> Identity:
        settings: Settings = request.app.state.settings
        try:
            identity = await keyring_for(settings).verify(_bearer(request))
        except KeyringUnavailable as exc:
            raise _unavailable(exc) from exc
        except Unauthorized as exc:
            raise HTTPException(status_code=401, detail="unauthorized",
                                headers={"WWW-Authenticate": "Bearer"}) from exc
        if identity.role in AGENT:
            identity = await _current(request, identity)
        is_super = identity.role == "admin" and identity.tenant_id == ROOT_TENANT
        if roles == STAFF:
            if identity.role not in AGENT:
                raise HTTPException(status_code=403, detail="forbidden")
        elif roles == SUPER:
            if not is_super:
                raise HTTPException(status_code=403, detail="forbidden")
        elif is_super or identity.role not in roles:
            raise HTTPException(status_code=403, detail="forbidden")
        request.state.identity = identity
        return identity

    dependency.__name__ = f"require_{'_'.join(sorted(roles))}"
    return dependency


async def _current(request: Request, identity: Identity) -> Identity:
    """The identity with the role and name the database gives now; 401 when revoked."""
    deps = await request.app.state.provide_deps()
    try:
        access = await staff_access(deps, tenant_id=identity.tenant_id,
                                    agent_id=identity.subject, version=identity.version)
    except Unauthorized as exc:
        raise HTTPException(status_code=401, detail="unauthorized",
                            headers={"WWW-Authenticate": "Bearer"}) from exc
    return identity.model_copy(update={"role": access.role, "name": access.name})


Principal = Annotated[Identity, Depends(require(AGENT))]


def actor_type(identity: Identity) -> Any:
    return "admin" if identity.role == "admin" else "agent"
