"""Images in the chat flows: the ``upload`` frame's answer, the image a message names, and
what a model is told of it (docs/protocol.md "Images")."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from kefu_core.chat.connections import ConnectionRecord
from kefu_core.chat.delivery import send
from kefu_core.chat.protocol import UploadFrame, upload_frame
from kefu_core.deps import Deps
from kefu_core.infra.errors import KefuError

if TYPE_CHECKING:
    from kefu_llm import ChatRequest

__all__ = ["IMAGE_PLACEHOLDER", "UNSEEN_NOTE", "image_meta", "model_text", "picture_or_note",
           "send_ticket", "with_picture"]

logger = logging.getLogger("kefu.flows.images")

# What a model that does not see images reads in place of one, and the system prompt's line
# that tells it what to do about it.
IMAGE_PLACEHOLDER = "[image]"
UNSEEN_NOTE = (
    "The visitor's last message includes a picture, shown as [image], which you cannot see. "
    "Do not guess what it shows: say that you cannot view pictures, answer from their words if "
    "you can, and offer a human agent who can look at it."
)


async def send_ticket(deps: Deps, record: ConnectionRecord, frame: UploadFrame,
                      conversation_id: str) -> None:
    """Answer ``upload`` with a form to upload the image to (caps and type checked)."""
    ticket = await deps.images.ticket(
        tenant_id=record.tenant_id, conversation_id=conversation_id,
        content_type=frame.content_type, size=frame.size, client_msg_id=frame.client_msg_id)
    await send(deps, record.connection_id, upload_frame(
        conversation_id=conversation_id, client_msg_id=frame.client_msg_id,
        upload_id=ticket.upload_id, url=ticket.url, fields=ticket.fields,
        max_bytes=ticket.max_bytes, expires_in=ticket.expires_in))


async def image_meta(deps: Deps, *, tenant_id: str, conversation_id: str,
                     upload_id: str | None, client_msg_id: str) -> dict[str, Any] | None:
    """The ``meta`` a message keeps for its image (None without one); BadFrame when the
    upload is missing or refused."""
    if upload_id is None:
        return None
    image = await deps.images.accept(tenant_id=tenant_id, conversation_id=conversation_id,
                                     upload_id=upload_id, client_msg_id=client_msg_id)
    return {"image": image}


def model_text(text: str, meta: dict[str, Any] | None) -> str:
    """A message's text as a model that does not see images reads it."""
    if not meta or not meta.get("image"):
        return text
    return f"{IMAGE_PLACEHOLDER} {text}".strip()


async def with_picture(deps: Deps, router: Any, request: ChatRequest,
                       image: dict[str, Any] | None) -> ChatRequest:
    """The request with the question's picture attached (a data URL on its user message) when
    an engine of ``router`` reads images; the request unchanged otherwise, or when the picture
    cannot be read (the model then reads the placeholder). The caller checks that the tenant
    allows it."""
    if not image or not getattr(router, "sees_images", False):
        return request
    try:
        found = await deps.images.read(image)
    except KefuError:  # the store failed, or images are off on this server
        logger.warning("the image could not be read; the model gets its placeholder")
        return request
    asked = [i for i, m in enumerate(request.messages) if m.role == "user"]
    if found is None or not asked:
        return request
    data, content_type = found
    url = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
    messages = list(request.messages)
    messages[asked[-1]] = messages[asked[-1]].model_copy(update={"images": [url]})
    return request.model_copy(update={"messages": messages})


async def picture_or_note(deps: Deps, router: Any, request: ChatRequest,
                          image: dict[str, Any] | None, *, allowed: bool) -> ChatRequest:
    """A question with a picture: the picture itself when the tenant ``allowed`` it and an
    engine reads images; otherwise a line of the system prompt saying the model cannot see it
    (so it does not pretend to)."""
    if not image:
        return request
    if allowed:
        seeing = await with_picture(deps, router, request, image)
        if seeing is not request:
            return seeing
    messages = list(request.messages)
    if messages and messages[0].role == "system":
        messages[0] = messages[0].model_copy(
            update={"content": f"{messages[0].content}\n\n{UNSEEN_NOTE}"})
    return request.model_copy(update={"messages": messages})
