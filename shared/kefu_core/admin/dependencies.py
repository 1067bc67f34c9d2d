"""Dependencies of the admin API's routes, as ``Annotated`` aliases a route declares.

- :data:`SettingsDep`: the app's :class:`~kefu_core.infra.settings.Settings`.
- :data:`DepsDep`: the process's :class:`~kefu_core.deps.Deps`, the composition root with every
  store (503 while the stores are down); the first call bootstraps the configured tenants.
- :data:`AgentId`, :data:`AdminId`, :data:`SuperId`, :data:`StaffId`: the caller's identity,
  when its role may call the route. 401 without a valid token; 403 with a valid token of
  another role (or a super-admin token on tenant routes, and a tenant token on super-admin
  routes).

A staff token must also still be current (:mod:`kefu_core.product.agent_auth`): its version
must match the agent's row, and the role is the row's, so deactivation, a role change, a new
password or "sign out everywhere" take effect on the next request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kefu_core.admin.auth import ADMIN, AGENT, STAFF, SUPER, unavailable
from kefu_core.deps import Deps
from kefu_core.infra.errors import Forbidden, StoreError, Unauthorized
from kefu_core.infra.settings import Settings
from kefu_core.product.agent_auth import staff_access
from kefu_core.product.tenants.bootstrap import ensure_bootstrap
from kefu_core.product.tenants.tenants import ROOT_TENANT
from kefu_core.security.keyring import KeyringUnavailable, keyring_for
from kefu_core.security.roles import Role
from kefu_core.security.tokens import Identity

__all__ = [
    "AdminId",
    "AgentId",
    "DepsDep",
    "DepsProvider",
    "SettingsDep",
    "StaffId",
    "SuperId",
    "get_deps",
    "require",
    "unauthorized",
]

DepsProvider = Callable[[], Awaitable[Deps]]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_deps(request: Request) -> Deps:
    provide: DepsProvider = request.app.state.deps_provider
    try:
        deps = await provide()
        await ensure_bootstrap(deps.pool, get_settings(request))
    except StoreError as exc:
        raise HTTPException(status_code=StoreError.status, detail=StoreError.detail) from exc
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]


def unauthorized() -> HTTPException:
    return HTTPException(status_code=Unauthorized.status, detail=Unauthorized.detail,
                         headers={"WWW-Authenticate": "Bearer"})


# The bearer scheme in the OpenAPI document (Swagger UI's Authorize); a missing or other
# scheme is None here and refused by the keyring with 401, like a forged token.
bearer = HTTPBearer(scheme_name="bearer", bearerFormat="JWT", auto_error=False,
                    description="A token from `POST /v1/agent/login` (15 minutes; "
                                "`POST /v1/agent/refresh` renews it).")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def require(roles: frozenset[Role]) -> Callable[[Request, Bearer], Awaitable[Identity]]:
    """A dependency: the caller's identity when its role is in ``roles``."""

    async def dependency(request: Request, credentials: Bearer) -> Identity:
        token = credentials.credentials if credentials else None
        try:
            identity = await keyring_for(get_settings(request)).verify(token)
        except KeyringUnavailable as exc:
            raise unavailable(exc) from exc
        except Unauthorized as exc:
            raise unauthorized() from exc
        if identity.role in AGENT:
            identity = await _current(request, identity)
        is_super = identity.role == "admin" and identity.tenant_id == ROOT_TENANT
        if roles == STAFF:
            allowed = identity.role in AGENT
        elif roles == SUPER:
            allowed = is_super
        else:
            allowed = not is_super and identity.role in roles
        if not allowed:
            raise HTTPException(status_code=Forbidden.status, detail=Forbidden.detail)
        request.state.identity = identity
        return identity

    dependency.__name__ = f"require_{'_'.join(sorted(roles))}"
    return dependency


async def _current(request: Request, identity: Identity) -> Identity:
    """The identity with the role and name the database gives now; 401 when revoked. The
    store is only reached for a token that verified (a forged one never touches it)."""
    deps = await get_deps(request)
    try:
        access = await staff_access(deps, tenant_id=identity.tenant_id,
                                    agent_id=identity.subject, version=identity.version)
    except Unauthorized as exc:
        raise unauthorized() from exc
    return identity.model_copy(update={"role": access.role, "name": access.name})


AgentId = Annotated[Identity, Depends(require(AGENT))]
AdminId = Annotated[Identity, Depends(require(ADMIN))]
SuperId = Annotated[Identity, Depends(require(SUPER))]
StaffId = Annotated[Identity, Depends(require(STAFF))]
