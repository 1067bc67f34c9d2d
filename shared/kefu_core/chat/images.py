"""Images in conversations: upload tickets, verification, storage and short-lived links
(reference: docs/protocol.md "Images").

One protocol whatever holds the files:

1. a participant asks for a ticket (``upload`` frame, with the type and size it will send);
   the caps are counted here; the ticket names a fresh random id under
   ``uploads/{tenant}/{conversation}/`` and is a form to POST the file to: an S3 presigned
   POST (content type and length range in its policy) or, self-hosted on disk, the gateway's
   ``/v1/uploads`` with a signed ticket field;
2. the participant POSTs the file, then sends its message naming the upload id;
3. :meth:`ImageService.accept` reads the upload from this tenant's and this conversation's
   prefix only (another conversation's id names nothing here), checks the magic bytes, size
   and dimensions, strips the metadata (:mod:`kefu_core.security.image_files`), writes the
   clean file under ``images/{tenant}/{conversation}/{id}`` and deletes the upload; a resent
   message finds the clean file and gets the same answer;
4. every frame that shows the message carries a link that expires (``IMAGE_URL_TTL_S``): an S3
   presigned GET or a signed gateway path. Links are only put in frames sent to the
   conversation's participants; nothing is public.

No image byte and no file name is logged.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kefu_core.infra.blobs import BlobStore, DiskBlobs, S3Blobs
from kefu_core.infra.errors import BadFrame, StoreError, Unauthorized
from kefu_core.infra.settings import Settings
from kefu_core.security.image_files import ALLOWED_TYPES, ImageRejected, strip_metadata
from kefu_core.security.keyring import keyring_for

__all__ = ["UPLOAD_PATH", "ImageService", "UploadTicket", "image_service_for"]

UPLOAD_PATH = "/v1/uploads"
IMAGE_PATH = "/v1/images/"
_UPLOAD_ISSUER, _IMAGE_ISSUER = "kefu-upload", "kefu-image"
_COUNT_TTL_S = 30 * 24 * 3600
_REJECTIONS = {
    "format": ("image_type", "only JPEG, PNG and WebP images are accepted"),
    "corrupt": ("image_corrupt", "the image could not be read"),
    "dimensions": ("image_dimensions", "the image is too large in pixels"),
}


@dataclass(frozen=True)
class UploadTicket:
    upload_id: str
    url: str
    fields: dict[str, str]
    max_bytes: int
    expires_in: int


class ImageService:
    """Tickets, acceptance and links for one process; ``blobs`` None: images are off."""

    def __init__(self, settings: Settings, blobs: BlobStore | None,
                 redis: aioredis.Redis) -> None:
        self.settings = settings
        self.blobs = blobs
        self._redis = redis

    @property
    def available(self) -> bool:
        return self.blobs is not None and self.settings.images_enabled

    # -- tickets -----------------------------------------------------------------------------
    async def ticket(self, *, tenant_id: str, conversation_id: str, content_type: str,
                     size: int, client_msg_id: str | None = None) -> UploadTicket:
        """A form to upload one image of ``content_type`` and ``size`` bytes, or BadFrame
        (naming ``client_msg_id``, the message the image was for)."""
        blobs = self._blobs(client_msg_id)
        if content_type not in ALLOWED_TYPES:
            raise BadFrame("image_type", "only JPEG, PNG and WebP images are accepted",
                           client_msg_id=client_msg_id)
        limit = self.settings.image_max_bytes
        if size > limit:
            raise BadFrame("image_too_large", f"images are limited to {limit} bytes",
                           client_msg_id=client_msg_id)
        await self._count(conversation_id, client_msg_id)
        upload_id = secrets.token_hex(16)
        key = _key("uploads", tenant_id, conversation_id, upload_id)
        ttl = self.settings.image_upload_ttl_s
        if isinstance(blobs, S3Blobs):
            form = blobs.presign_post(key, content_type=content_type, max_bytes=limit,
                                      expires_s=ttl)
            url, fields = form.url, form.fields
        else:
            ticket = await self._sign({"iss": _UPLOAD_ISSUER, "k": key, "ct": content_type,
                                       "max": limit}, ttl)
            url, fields = UPLOAD_PATH, {"ticket": ticket}
        return UploadTicket(upload_id=upload_id, url=url, fields=fields, max_bytes=limit,
                            expires_in=ttl)

    async def _count(self, conversation_id: str, client_msg_id: str | None) -> None:
        """Per conversation: ``IMAGE_RATE_PER_MINUTE`` tickets a minute and
        ``IMAGE_MAX_PER_CONVERSATION`` in all (for 30 days)."""
        prefix = f"{self.settings.redis_prefix}img:{conversation_id}"
        minute = f"{prefix}:{int(time.time() // 60)}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(prefix)
                pipe.expire(prefix, _COUNT_TTL_S, nx=True)
                pipe.incr(minute)
                pipe.expire(minute, 120)
                total, _, recent, _ = await pipe.execute()
        except RedisError as exc:
            raise StoreError("cannot count the images") from exc
        if int(total) > self.settings.image_max_per_conversation:
            raise BadFrame("too_many_images", "this conversation has all the images it may have",
                           client_msg_id=client_msg_id)
        if int(recent) > self.settings.image_rate_per_minute:
            raise BadFrame("too_many_images", "too many images; wait a minute",
                           client_msg_id=client_msg_id)

    # -- accepting ---------------------------------------------------------------------------
    async def accept(self, *, tenant_id: str, conversation_id: str, upload_id: str,
                     client_msg_id: str | None = None) -> dict[str, Any]:
        """The clean image of an upload of this conversation (what a message keeps in its
        ``meta``), or BadFrame: missing, wrong type, unreadable, too large."""
        blobs = self._blobs(client_msg_id)
        final = _key("images", tenant_id, conversation_id, upload_id)
        known = await blobs.head(final)
        if known is not None:  # accepted before: a resent message
            return _meta(final, known.get("content-type", ""), known)
        pending = _key("uploads", tenant_id, conversation_id, upload_id)
        blob = await blobs.get(pending, max_bytes=self.settings.image_max_bytes)
        if blob is None:
            raise BadFrame("image_missing", "upload the image first (or it was too large)",
                           client_msg_id=client_msg_id)
        try:
            clean, facts = strip_metadata(blob.data, max_side=self.settings.image_max_side)
        except ImageRejected as exc:
            await blobs.delete(pending)
            code, message = _REJECTIONS[exc.reason]
            raise BadFrame(code, message, client_msg_id=client_msg_id) from None
        metadata = {"width": str(facts.width), "height": str(facts.height),
                    "bytes": str(len(clean))}
        await blobs.put(final, clean, content_type=facts.content_type, metadata=metadata)
        await blobs.delete(pending)
        return _meta(final, facts.content_type, metadata)

    async def read(self, meta: dict[str, Any]) -> tuple[bytes, str] | None:
        """A kept image's bytes and type (for an engine that sees images)."""
        blob = await self._blobs().get(str(meta["key"]), max_bytes=self.settings.image_max_bytes)
        return (blob.data, blob.content_type) if blob else None

    # -- links -------------------------------------------------------------------------------
    async def public(self, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """What a client is shown of a kept image: its link (expiring), type and size."""
        if not meta or not self.available:
            return None
        blobs = self._blobs()
        ttl = self.settings.image_url_ttl_s
        key = str(meta["key"])
        if isinstance(blobs, S3Blobs):
            url = blobs.presign_get(key, expires_s=ttl)
        else:
            url = IMAGE_PATH + await self._sign({"iss": _IMAGE_ISSUER, "k": key}, ttl)
        return {"url": url, "content_type": meta.get("content_type"), "width": meta.get("width"),
                "height": meta.get("height"), "bytes": meta.get("bytes")}

    async def with_links(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Public message dicts with each kept image replaced by its link."""
        return [{**m, "image": await self.public(m["image"])} if m.get("image") else m
                for m in messages]

    # -- the gateway's own endpoints (disk storage) ------------------------------------------
    async def receive(self, ticket: str, *, content_type: str, data: bytes) -> None:
        """Keep an upload POSTed to the gateway with its ticket. Raises Unauthorized (bad or
        expired ticket) or BadFrame (type or size other than the ticket's)."""
        claims = await self._verify(ticket, _UPLOAD_ISSUER)
        if content_type != claims.get("ct"):
            raise BadFrame("image_type", "the file's type is not the ticket's")
        if not data or len(data) > int(claims.get("max", 0)):
            raise BadFrame("image_too_large", "the file is empty or over the ticket's size")
        await self._blobs().put(str(claims["k"]), data, content_type=content_type, metadata={})

    async def open(self, token: str) -> tuple[bytes, str] | None:
        """The image a signed link names (Unauthorized when the link is forged or expired)."""
        claims = await self._verify(token, _IMAGE_ISSUER)
        blob = await self._blobs().get(str(claims["k"]), max_bytes=self.settings.image_max_bytes)
        return (blob.data, blob.content_type) if blob else None

    # -- erasure -----------------------------------------------------------------------------
    async def forget_conversation(self, *, tenant_id: str, conversation_id: str) -> int:
        """Delete a conversation's images and pending uploads; how many images there were."""
        if self.blobs is None:
            return 0
        count = await self.blobs.delete_prefix(_key("images", tenant_id, conversation_id))
        await self.blobs.delete_prefix(_key("uploads", tenant_id, conversation_id))
        return count

    # -- helpers -----------------------------------------------------------------------------
    def _blobs(self, client_msg_id: str | None = None) -> BlobStore:
        if self.blobs is None or not self.settings.images_enabled:
            raise BadFrame("images_unavailable", "images are not enabled on this server",
                           client_msg_id=client_msg_id)
        return self.blobs

    async def _sign(self, claims: dict[str, Any], ttl_s: int) -> str:
        keys = await keyring_for(self.settings).akeys()
        now = int(time.time())
        return jwt.encode({**claims, "iat": now, "exp": now + ttl_s}, keys.signing,
                          algorithm="HS256")

    async def _verify(self, token: str, issuer: str) -> dict[str, Any]:
        keys = await keyring_for(self.settings).akeys()
        for secret in keys.verifying:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, secret, algorithms=["HS256"], issuer=issuer,
                    options={"require": ["exp", "iss"]})
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise Unauthorized("invalid link") from exc
            return claims
        raise Unauthorized("invalid link")


def _key(kind: str, tenant_id: str, conversation_id: str, upload_id: str | None = None) -> str:
    parts = [kind, tenant_id, conversation_id, *([upload_id] if upload_id else [])]
    return "/".join(parts)


def _meta(key: str, content_type: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"key": key, "content_type": content_type, "width": int(metadata.get("width", 0)),
            "height": int(metadata.get("height", 0)), "bytes": int(metadata.get("bytes", 0))}


def image_service_for(settings: Settings, redis: aioredis.Redis) -> ImageService:
    """S3 when ``IMAGE_BUCKET`` is set; else files under ``IMAGE_DIR`` (default
    ``{DATA_DIR}/images``), except in a Lambda function, which has no disk to keep them on."""
    blobs: BlobStore | None
    if settings.image_bucket:
        blobs = S3Blobs(settings.image_bucket, region=settings.aws_region)
    elif os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        blobs = None
    else:
        blobs = DiskBlobs(settings.image_dir or os.path.join(settings.data_dir, "images"))
    return ImageService(settings, blobs, redis)
