"""What a model is told of a visitor's picture, over an OpenAI-compatible fake provider and a
production gateway: the picture itself only when the tenant allows it and the engine reads
images; "[image]" otherwise."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.fake_openai import FakeOpenAI
from tests.support.gateway import RunningGateway
from tests.support.images import GPS_MARK, decoded, jpeg_with_exif
from tests.support.prod_gateway import admin_token, production_gateway


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(first_token_ms=5, tokens_per_s=0) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(make_database, redis_url, fake, tmp_path_factory) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    # GIVEN a deployment whose one engine reads images (``images: true``)
    engines = [{"name": "seeing", "provider": "fakeai", "base_url": fake.base_url,
                "model": "fake-vision", "api_keys": ["sk-vision"], "images": True}]
    mp = pytest.MonkeyPatch()
    mp.setenv("ENGINES", json.dumps(engines))
    with production_gateway(dsn=make_database(), redis_url=redis_url, name="vision",
                            image_dir=str(tmp_path_factory.mktemp("images"))) as running:
        yield running
    mp.undo()


async def _allow_images(gateway: RunningGateway, tenant: str, allowed: bool) -> None:
    token = await admin_token(gateway, tenant=tenant)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        current = (await http.get("/v1/admin/settings", headers=headers)).json()
        saved = await http.put("/v1/admin/settings", headers=headers,
                               json={**current, "images_to_model": allowed})
    assert saved.status_code == 200, saved.text
    assert saved.json()["images_to_model"] is allowed


async def _send_photo(gateway: RunningGateway, tenant: str, photo: bytes) -> dict[str, Any]:
    """A visitor of ``tenant`` sends the photo with a question; the reply's final frame."""
    token = issue_token(secrets=[SECRET], tenant_id=tenant, subject=f"v-{uuid.uuid4().hex}",
                        role="visitor", ttl_s=600)
    async with websockets.connect(f"{gateway.ws}?token={token}") as ws, \
            httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        await ws.send(json.dumps({"action": "upload", "client_msg_id": "c-1",
                                  "content_type": "image/jpeg", "size": len(photo)}))
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while not frames or frames[-1]["type"] != "upload":
                frames.append(json.loads(await ws.recv()))
        form = frames[-1]
        posted = await http.post(form["url"], data=form["fields"],
                                 files={"file": ("p.jpg", photo, "image/jpeg")})
        assert posted.status_code == 204
        await ws.send(json.dumps({"action": "message", "client_msg_id": "c-1",
                                  "text": "这个插头是哪个型号？", "image": form["upload_id"]}))
        async with asyncio.timeout(15):
            while frames[-1]["type"] != "final":
                frames.append(json.loads(await ws.recv()))
    return frames[-1]


def _question(fake: FakeOpenAI, marker: str) -> Any:
    """The content of the user message that asked ``marker``, as the provider received it."""
    for request in reversed(fake.requests):
        for message in request["messages"]:
            content = message["content"]
            text = content if isinstance(content, str) else " ".join(
                part.get("text", "") for part in content)
            if message["role"] == "user" and marker in text:
                return content
    raise AssertionError("the question never reached the provider")


async def test_the_picture_reaches_an_engine_that_reads_images_when_the_tenant_allows_it(
    gateway: RunningGateway, fake: FakeOpenAI,
) -> None:
    # GIVEN a tenant that allows its visitors' pictures to reach the model
    await _allow_images(gateway, "seeing-co", True)
    photo = jpeg_with_exif(200, 150)
    # WHEN a visitor sends a photo with a question
    final = await _send_photo(gateway, "seeing-co", photo)
    assert final["status"] == "complete"
    # THEN the provider received the question as text and an image part: the clean picture
    content = _question(fake, "这个插头是哪个型号")
    assert isinstance(content, list) and content[0]["type"] == "text"
    (picture,) = [part for part in content if part["type"] == "image_url"]
    assert "which you cannot see" not in json.dumps(fake.requests[-1]["messages"][0])
    head, _, data = picture["image_url"]["url"].partition(",")
    assert head == "data:image/jpeg;base64"
    sent = base64.b64decode(data)
    assert decoded(sent).size == (200, 150) and GPS_MARK not in sent


async def test_a_tenant_that_did_not_allow_it_sends_only_the_placeholder(
    gateway: RunningGateway, fake: FakeOpenAI,
) -> None:
    # GIVEN a tenant on the defaults (pictures are not for the model), the same engine
    await _allow_images(gateway, "private-co", False)
    # WHEN its visitor sends a photo with a question
    final = await _send_photo(gateway, "private-co", jpeg_with_exif(120, 90))
    assert final["status"] == "complete"
    # THEN the provider got text only, with "[image]" where the picture was, and the system
    # prompt says it cannot see the picture (so it does not pretend to)
    content = _question(fake, "这个插头是哪个型号")
    assert isinstance(content, str) and content.startswith("[image]")
    messages = fake.requests[-1]["messages"]
    assert "image_url" not in json.dumps(messages)
    assert "which you cannot see" in messages[0]["content"]
