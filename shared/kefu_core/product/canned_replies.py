"""Canned replies: a tenant's ready answers that agents insert in the console by typing ``/``
and a shortcut (``/refund``). Kept in the tenant's settings (``canned_replies``, managed with
``PUT /v1/admin/settings``); agents read them with ``GET /v1/canned-replies``. Text only: the
console inserts a reply into the message box, where the agent may edit it before sending.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["MAX_CANNED_REPLIES", "CannedReply"]

MAX_CANNED_REPLIES = 200


class CannedReply(BaseModel):
    # Letters, digits, _ or -, 1 to 32 of them. The length is a constraint of its own, not
    # ``{1,32}`` in the pattern: pydantic's regex engine compiles a repeated Unicode ``\w``
    # class once per repetition (about 8 ms at every cold start of a function that imports
    # the tenant settings); the accepted shortcuts are the same.
    shortcut: str = Field(min_length=1, max_length=32, pattern=r"^[\w-]+$")
    text: str = Field(min_length=1, max_length=2000)
