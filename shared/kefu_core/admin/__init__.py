"""The admin HTTP API (FastAPI): served by the gateway and, on AWS, by Lambda through Mangum.

- ``app``: :func:`create_admin_app` assembles the middleware, error handlers and routers.
- ``routers/``: one ``APIRouter`` per resource, with its request and response models.
- ``dependencies``: settings, the composition root (Deps), and the caller's identity by role.
- ``errors``: the one mapping from exceptions to HTTP statuses.
- ``auth`` (roles, token secrets), ``access`` (after an agent's access changed),
  ``audit_trail`` (audit entries of changes), ``cors``, ``models`` (shared path types),
  ``cli`` (``kefu admin``).
"""

from kefu_core.admin.app import create_admin_app

__all__ = ["create_admin_app"]
