"""CORS of the admin API: one policy for the widget's route, another for staff routes.

- ``POST /v1/visitor-token`` is called by the widget from customers' pages: its preflight is
  answered for any origin, and every response names the caller's origin (never ``*``, with
  ``Vary: Origin``). The route itself refuses an origin its widget key does not allow, so a
  token is only ever readable by an allowed page.
- Every other route (agent login, console, admin) answers cross-origin calls only from
  ``ADMIN_ALLOWED_ORIGINS`` (empty by default: same origin only, as the console served by
  `kefu run` is). No route uses cookies, so credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["WIDGET_PATHS", "SplitCorsMiddleware"]

WIDGET_PATHS = frozenset({"/v1/visitor-token"})


class SplitCorsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        staff_origins: Iterable[str],
        widget_paths: frozenset[str] = WIDGET_PATHS,
    ) -> None:
        self.widget_paths = widget_paths
        self.widget = CORSMiddleware(app, allow_origin_regex=r".+", allow_methods=["POST"],
                                     allow_headers=["content-type"], max_age=600)
        self.staff = CORSMiddleware(app, allow_origins=[o.rstrip("/") for o in staff_origins],
                                    allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                                    allow_headers=["authorization", "content-type"],
                                    max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root):]
        policy = self.widget if path in self.widget_paths else self.staff
        await policy(scope, receive, send)
