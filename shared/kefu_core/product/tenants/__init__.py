"""Tenants and what belongs to them, one small store per resource (all in PostgreSQL):

- :mod:`.tenants`: the tenants themselves and their identity secret (``TenantStore``);
- :mod:`.agents`: agents (staff) and signing in (``AgentStore``), their passwords hashed by
  :mod:`.passwords`;
- :mod:`.widget_keys`: the public keys a page embeds the widget with (``WidgetKeyStore``);
- :mod:`.settings`: per-tenant settings and prompts, with the cached lookup the flows use
  (``SettingsStore``);
- :mod:`.engines`: a tenant's engine chain and engine secrets (``EngineStore``);
- :mod:`.bootstrap`: what the environment configures, created at start;
- :mod:`.rows` and :mod:`.sealing`: the queries' error mapping and the sealing of secrets that
  the stores share.

The process's instances are fields of :class:`~kefu_core.deps.Deps`. Identity and engine
secrets are write-only: no read path returns them, except the server's own lookups
(``TenantStore.identity_secret`` to verify an identity, ``EngineStore.secret`` for the
engines). Both are stored encrypted (:mod:`kefu_core.security.datakeys`); a value stored
before encryption, or with an older key, is sealed again when next read.
"""
