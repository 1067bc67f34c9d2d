"""Images in an S3 bucket (moto's server): the presigned form, the clean copy, the expiring
link and the erasure, with the code the Lambda functions run."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
import redis.asyncio as aioredis

from kefu_core.chat.images import ImageService, image_service_for
from kefu_core.infra.errors import BadFrame
from kefu_core.infra.settings import Settings
from tests.support.images import GPS_MARK, decoded, jpeg_with_exif
from tests.support.secrets_manager import CREDENTIALS, REGION, moto_server

CONVERSATION = "6f1d5c1e-2b7a-4c8e-9d0f-123456789abc"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The product's client finds the endpoint as boto3 does (AWS_ENDPOINT_URL_S3: MinIO, moto)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint}.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


@pytest.fixture
async def service(s3: Any, redis_url: str) -> AsyncIterator[ImageService]:
    bucket = f"kefu-images-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    settings = Settings(kefu_env="test", image_bucket=bucket, image_max_bytes=100_000,
                        redis_prefix=f"kefu-test:s3img:{uuid.uuid4().hex[:8]}:")
    redis = aioredis.Redis.from_url(redis_url)
    try:
        yield image_service_for(settings, redis)
    finally:
        await redis.aclose()


async def test_a_presigned_post_uploads_and_the_message_keeps_a_clean_private_copy(
    service: ImageService, s3: Any,
) -> None:
    bucket = service.settings.image_bucket
    # GIVEN a form for a JPEG in acme's conversation
    ticket = await service.ticket(tenant_id="acme", conversation_id=CONVERSATION,
                                  content_type="image/jpeg", size=5000)
    key = f"uploads/acme/{CONVERSATION}/{ticket.upload_id}"
    assert ticket.fields["key"] == key and ticket.fields["Content-Type"] == "image/jpeg"
    assert "policy" in ticket.fields and ticket.expires_in == 300
    # WHEN the browser POSTs a photo carrying GPS with it
    async with httpx.AsyncClient(timeout=30) as http:
        posted = await http.post(ticket.url, data=ticket.fields,
                                 files={"file": ("p.jpg", jpeg_with_exif(50, 40), "image/jpeg")})
        assert posted.status_code in (200, 204), posted.text
        # AND the message names the upload
        meta = await service.accept(tenant_id="acme", conversation_id=CONVERSATION,
                                    upload_id=ticket.upload_id)
        # THEN the bucket holds a clean copy under images/, and no upload any more
        assert meta["key"] == f"images/acme/{CONVERSATION}/{ticket.upload_id}"
        assert (meta["width"], meta["height"], meta["content_type"]) == (50, 40, "image/jpeg")
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert listed == [meta["key"]]
        # AND clients get a presigned GET that expires, never a public object
        shown = await service.public(meta)
        assert shown is not None and "X-Amz-Expires=600" in shown["url"]
        served = await http.get(shown["url"])
        assert served.status_code == 200 and decoded(served.content).size == (50, 40)
        assert GPS_MARK not in served.content
        unsigned = await http.get(shown["url"].split("?", 1)[0])
        assert unsigned.status_code == 403
    # AND a resent message gets the same image back
    again = await service.accept(tenant_id="acme", conversation_id=CONVERSATION,
                                 upload_id=ticket.upload_id)
    assert again == meta
    # AND another conversation naming the same id finds nothing
    with pytest.raises(BadFrame) as missing:
        await service.accept(tenant_id="acme", conversation_id=CONVERSATION.replace("6f", "7f"),
                             upload_id=ticket.upload_id)
    assert missing.value.code == "image_missing"
    # WHEN the conversation is erased THEN its images are deleted
    assert await service.forget_conversation(tenant_id="acme",
                                             conversation_id=CONVERSATION) == 1
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


async def test_the_form_policy_fixes_the_key_the_type_a_length_range_and_a_short_expiry(
    service: ImageService,
) -> None:
    # GIVEN a form for a 5000-byte PNG (the deployment's limit is 100,000 bytes)
    before = datetime.now(UTC)
    ticket = await service.ticket(tenant_id="acme", conversation_id=CONVERSATION,
                                  content_type="image/png", size=5000)
    # WHEN the policy S3 checks the POST against is read (moto accepts any POST)
    policy = json.loads(base64.b64decode(ticket.fields["policy"]))
    # THEN it allows exactly this key and type, 1 byte to the limit, for five minutes
    conditions = policy["conditions"]
    assert {"key": f"uploads/acme/{CONVERSATION}/{ticket.upload_id}"} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1, 100_000] in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(seconds=290) < expires - before < timedelta(seconds=310)
    # AND a form for another type or a larger file is not given at all
    for content_type, size, code in (("image/gif", 10, "image_type"),
                                     ("image/png", 100_001, "image_too_large")):
        with pytest.raises(BadFrame) as refused:
            await service.ticket(tenant_id="acme", conversation_id=CONVERSATION,
                                 content_type=content_type, size=size)
        assert refused.value.code == code
