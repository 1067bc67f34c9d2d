"""What the environment configures, created at start: the tenants of ``WIDGET_KEYS`` with their
keys, the super-admin from ``SUPER_ADMIN_EMAIL``/``SUPER_ADMIN_PASSWORD`` and, outside
production, a demo administrator."""

from __future__ import annotations

import logging
import weakref

from psycopg_pool import AsyncConnectionPool

from kefu_core.infra.errors import Conflict
from kefu_core.infra.settings import Settings
from kefu_core.product.tenants.agents import AgentStore
from kefu_core.product.tenants.tenants import ROOT_TENANT, TenantStore
from kefu_core.product.tenants.widget_keys import WidgetKeyStore

__all__ = ["DEMO_ADMIN_EMAIL", "DEMO_ADMIN_PASSWORD", "ensure_bootstrap"]

logger = logging.getLogger("kefu.tenants")

DEMO_ADMIN_EMAIL = "admin@demo.kefu"
DEMO_ADMIN_PASSWORD = "kefu-demo-admin"

_bootstrapped: weakref.WeakSet[AsyncConnectionPool] = weakref.WeakSet()


async def ensure_bootstrap(pool: AsyncConnectionPool, settings: Settings) -> None:
    """Create what the environment configures, once per pool (idempotent, so two processes or
    two concurrent first requests doing it at once are harmless)."""
    if pool in _bootstrapped:
        return
    tenants, agents, keys = TenantStore(pool), AgentStore(pool), WidgetKeyStore(pool)
    for key, tenant in settings.widget_tenants().items():
        await tenants.ensure(tenant_id=tenant, name=tenant)
        await keys.ensure(tenant_id=tenant, key=key, label="WIDGET_KEYS")
    email = settings.super_admin_email
    password = settings.super_admin_password
    if email and password:
        await tenants.ensure(tenant_id=ROOT_TENANT, name="super-admin")
        await _ensure_admin(agents, tenant_id=ROOT_TENANT, email=email, name="Super admin",
                            password=password)
    if settings.kefu_env != "production":  # never in production, and refused there
        for tenant in sorted(set(settings.widget_tenants().values()))[:1]:
            await _ensure_admin(agents, tenant_id=tenant, email=DEMO_ADMIN_EMAIL,
                                name="Demo admin", password=DEMO_ADMIN_PASSWORD, demo=True)
    _bootstrapped.add(pool)


async def _ensure_admin(
    agents: AgentStore, *, tenant_id: str, email: str, name: str, password: str,
    demo: bool = False,
) -> None:
    try:
        await agents.create(tenant_id=tenant_id, email=email, name=name, password=password,
                            role="admin", demo=demo)
        logger.info("bootstrap: created administrator", extra={"tenant": tenant_id})
    except Conflict:
        pass
