"""The gateway's image endpoints when images are kept on its disk (no ``IMAGE_BUCKET``):
``POST /v1/uploads`` takes the form an ``upload`` ticket describes, ``GET /v1/images/{link}``
serves a kept image to whoever holds an unexpired link (docs/protocol.md "Images").

The body limit (``IMAGE_MAX_BYTES`` and room for the form) is enforced before the body is read
(``BodyLimitMiddleware``). Neither route logs a byte of the image.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kefu_core.chat.images import IMAGE_PATH, UPLOAD_PATH, ImageService
from kefu_core.infra.errors import BadFrame, KefuError, Unauthorized
from kefu_core.security.http_limits import KIB, BodyLimit

__all__ = ["image_body_limit", "image_routes"]

FORM_ROOM = 16 * KIB  # the ticket and the form's boundaries around the file
# Uploads are authorised by their ticket, never by a cookie: any page may post one (a browser
# that watches the upload's progress asks first: the preflight is answered for any origin too).
_CORS = {"Access-Control-Allow-Origin": "*"}
_PREFLIGHT = {**_CORS, "Access-Control-Allow-Methods": "POST",
              "Access-Control-Allow-Headers": "content-type", "Access-Control-Max-Age": "3600"}


def image_body_limit(max_bytes: int) -> BodyLimit:
    return BodyLimit(path=UPLOAD_PATH, max_bytes=max_bytes + FORM_ROOM,
                     methods=frozenset({"POST"}))


def _answer(status: int, code: str) -> Response:
    return JSONResponse({"detail": code}, status_code=status, headers=_CORS)


def image_routes(images: Callable[[], Awaitable[ImageService]]) -> list[Route]:
    """The two routes, reading the image service of the running gateway."""

    async def upload(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_PREFLIGHT)
        service = await images()
        try:
            form = await request.form(max_files=1, max_fields=20)
        except (HTTPException, ValueError):  # a malformed form
            return _answer(400, "bad_form")
        file, ticket = form.get("file"), form.get("ticket")
        if not isinstance(file, UploadFile) or not isinstance(ticket, str):
            return _answer(400, "bad_form")
        data = await file.read(service.settings.image_max_bytes + 1)
        try:
            await service.receive(ticket, content_type=file.content_type or "", data=data)
        except Unauthorized:
            return _answer(403, "bad_ticket")
        except BadFrame as exc:
            return _answer(413 if exc.code == "image_too_large" else 400, exc.code)
        except KefuError as exc:
            return _answer(exc.status, exc.code)
        return Response(status_code=204, headers=_CORS)

    async def image(request: Request) -> Response:
        service = await images()
        try:
            found = await service.open(str(request.path_params["link"]))
        except Unauthorized:
            return Response("Forbidden", status_code=403)
        if found is None:
            return Response("Not Found", status_code=404)
        data, content_type = found
        headers: dict[str, Any] = {
            "Cache-Control": f"private, max-age={service.settings.image_url_ttl_s}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "Content-Disposition": "inline",
        }
        return Response(data, media_type=content_type, headers=headers)

    return [Route(UPLOAD_PATH, upload, methods=["POST", "OPTIONS"]),
            Route(IMAGE_PATH + "{link}", image, methods=["GET"])]
