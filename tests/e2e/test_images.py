"""Images end to end through a production gateway keeping them on its disk: a visitor and an
agent on real WebSockets, the upload form over HTTP, real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from kefu_core.infra.db import open_pool
from kefu_core.security.tokens import issue_token
from tests.support.core import SECRET
from tests.support.gateway import RunningGateway
from tests.support.images import AUTHOR, GPS_MARK, decoded, jpeg_with_exif, png_with_text
from tests.support.prod_gateway import admin_token, production_gateway
from tests.support.staff import make_staff, token_for

TENANT = "pics"
CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client", "asyncio", "PIL")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def gateway(make_database, redis_url, image_dir) -> Iterator[RunningGateway]:  # type: ignore[no-untyped-def]
    with production_gateway(dsn=make_database(), redis_url=redis_url, name="images",
                            image_dir=str(image_dir), image_max_bytes=200_000,
                            image_max_per_conversation=4, memory_enabled=True) as running:
        yield running


def visitor_token(tenant: str = TENANT) -> tuple[str, str]:
    visitor = f"v-{uuid.uuid4().hex}"
    return visitor, issue_token(secrets=[SECRET], tenant_id=tenant, subject=visitor,
                                role="visitor", ttl_s=600)


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                self.seen.append(frame)
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame


def files_under(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def connect(gw: RunningGateway, token: str) -> Any:
    return websockets.connect(f"{gw.ws}?token={token}", open_timeout=10)


async def upload(http: httpx.AsyncClient, client: Client, data: bytes, content_type: str,
                 cid: str, **extra: Any) -> tuple[dict[str, Any], httpx.Response]:
    """Ask for a form, then POST the file with it as a browser would."""
    await client.send({"action": "upload", "client_msg_id": cid, "content_type": content_type,
                       "size": len(data), **extra})
    form = await client.until("upload", client_msg_id=cid)
    posted = await http.post(form["url"], data=form["fields"],
                             files={"file": ("photo", data, content_type)})
    return form, posted


async def test_a_visitor_sends_a_photo_that_arrives_without_its_metadata(
    gateway: RunningGateway, image_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        admin = await admin_token(gateway, tenant=TENANT)
        _, token = visitor_token()
        original = jpeg_with_exif(120, 90)
        async with connect(gateway, token) as ws:
            guest = Client(ws)
            await guest.send({"action": "sync", "last_seq": 0})
            await guest.until("history")
            # GIVEN a visitor's photo carrying EXIF with GPS and the author's name
            # WHEN they ask for a form (the conversation starts), upload, then send it
            form, posted = await upload(http, guest, original, "image/jpeg", "c-1")
            assert posted.status_code == 204, posted.text
            assert form["url"] == "/v1/uploads" and set(form["fields"]) == {"ticket"}
            await guest.send({"action": "message", "client_msg_id": "c-1", "text": "",
                              "image": form["upload_id"]})
            ack = await guest.until("ack")
            # THEN it is stored as a message, and the assistant reads it as an image
            assert ack["conversation_id"] == form["conversation_id"]
            final = await guest.until("final")
            assert final["status"] == "complete"
            # AND a later sync shows it with a link whose file has no metadata left
            await guest.send({"action": "sync", "last_seq": 0})
            history = await guest.until("history")
        image = history["messages"][0]["image"]
        assert history["messages"][0]["text"] == ""
        assert (image["content_type"], image["width"], image["height"]) == ("image/jpeg", 120, 90)
        served = await http.get(image["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "private" in served.headers["cache-control"]
        assert decoded(served.content).size == (120, 90) and not decoded(served.content).getexif()
        assert GPS_MARK not in served.content and AUTHOR.encode() not in served.content
        # AND nothing on disk holds the original bytes; the pending upload is gone
        kept = files_under(image_dir)
        assert kept and not any(GPS_MARK in data for data in kept.values())
        assert not [p for p in kept if "/uploads/" in str(p) and not p.name.endswith(".json")]
        # AND the admin API's transcript links it too
        transcript = (await http.get(f"/v1/conversations/{ack['conversation_id']}",
                                     headers={"authorization": f"Bearer {admin}"})).json()
        assert (await http.get(transcript["messages"][0]["image"]["url"])).content == \
            served.content
        # AND a link that was tampered with is refused
        tampered = image["url"][:-3] + ("aaa" if not image["url"].endswith("aaa") else "bbb")
        assert (await http.get(tampered)).status_code == 403
    # AND the server's logs of all this hold neither the image, nor its upload ticket, nor its
    # link (this test's own HTTP client logs the URLs it fetched, and Pillow what it decoded:
    # not the server's)
    server = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert {r.name.split(".")[0] for r in server} >= {"kefu"}, "the gateway's logs are seen"
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server)
    for secret in (form["fields"]["ticket"], image["url"].rsplit("/", 1)[-1], GPS_MARK.decode(),
                   AUTHOR):
        assert secret not in logged


async def test_wrong_types_sizes_and_forms_are_refused(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        _, token = visitor_token()
        async with connect(gateway, token) as ws:
            guest = Client(ws)
            # WHEN a visitor asks to send a GIF, or a file over the limit
            await guest.send({"action": "upload", "client_msg_id": "g-1",
                              "content_type": "image/gif", "size": 100})
            gif = await guest.until("error")
            assert (gif["code"], gif["client_msg_id"]) == ("image_type", "g-1")
            await guest.send({"action": "upload", "client_msg_id": "g-2",
                              "content_type": "image/png", "size": 200_001})
            assert (await guest.until("error"))["code"] == "image_too_large"
            # WHEN the bytes posted are not the ticket's type, or over its size
            png = png_with_text()
            _, wrong = await upload(http, guest, png, "image/png", "g-3")
            assert wrong.status_code == 204
            form, _ = await upload(http, guest, png, "image/png", "g-4")
            as_jpeg = await http.post(form["url"], data=form["fields"],
                                      files={"file": ("x", png, "image/jpeg")})
            assert as_jpeg.status_code == 400 and as_jpeg.json()["detail"] == "image_type"
            too_big = await http.post(form["url"], data=form["fields"],
                                      files={"file": ("x", b"\x89PNG" + b"0" * 300_000,
                                                      "image/png")})
            assert too_big.status_code == 413
            forged = await http.post(form["url"], data={"ticket": form["fields"]["ticket"] + "x"},
                                     files={"file": ("x", png, "image/png")})
            assert forged.status_code == 403
            # WHEN a script posts HTML under an image type and sends the message
            html_form, html_post = await upload(http, guest, b"<html><script>x</script>",
                                                "image/png", "g-5")
            assert html_post.status_code == 204
            await guest.send({"action": "message", "client_msg_id": "g-5",
                              "image": html_form["upload_id"]})
            # THEN the magic bytes decide: it is refused and nothing is stored
            refused = await guest.until("error")
            assert (refused["code"], refused["client_msg_id"]) == ("image_type", "g-5")
            # AND the per-conversation cap (4 here) gives a fourth form, not a fifth
            await guest.send({"action": "upload", "client_msg_id": "g-6",
                              "content_type": "image/png", "size": 10})
            await guest.until("upload", client_msg_id="g-6")
            await guest.send({"action": "upload", "client_msg_id": "g-7",
                              "content_type": "image/png", "size": 10})
            assert (await guest.until("error"))["code"] == "too_many_images"
            await guest.send({"action": "sync", "last_seq": 0})
            assert (await guest.until("history"))["messages"] == []


async def test_an_image_of_another_conversation_or_tenant_is_out_of_reach(
    gateway: RunningGateway,
) -> None:
    dsn = gateway.gateway.settings.database_url
    assert dsn
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        outsider = token_for(await make_staff(pool, tenant_id="elsewhere", name="Outsider"))
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        _, alice = visitor_token()
        _, mallory = visitor_token()
        async with connect(gateway, alice) as a_ws, connect(gateway, mallory) as m_ws, \
                connect(gateway, outsider) as o_ws:
            victim, thief, other = Client(a_ws), Client(m_ws), Client(o_ws)
            # GIVEN Alice uploaded a photo in her conversation
            form, posted = await upload(http, victim, jpeg_with_exif(), "image/jpeg", "a-1")
            assert posted.status_code == 204
            # WHEN Mallory (another visitor of the tenant) sends a message naming its id
            await thief.send({"action": "upload", "client_msg_id": "m-0",
                              "content_type": "image/jpeg", "size": 10})
            await thief.until("upload")  # Mallory has a conversation of her own
            await thief.send({"action": "message", "client_msg_id": "m-1",
                              "image": form["upload_id"]})
            # THEN there is no such upload in Mallory's conversation
            assert (await thief.until("error"))["code"] == "image_missing"
            # WHEN an agent of another tenant asks for a form in Alice's conversation
            await other.send({"action": "upload", "client_msg_id": "o-1",
                              "content_type": "image/jpeg", "size": 10,
                              "conversation_id": form["conversation_id"]})
            # THEN it does not exist for them
            assert (await other.until("error"))["code"] == "not_found"
            # AND Alice's message with it still goes through
            await victim.send({"action": "message", "client_msg_id": "a-1",
                               "image": form["upload_id"]})
            assert (await victim.until("ack"))["duplicate"] is False


async def test_an_agent_sends_an_image_and_erasure_deletes_the_visitors_images(
    gateway: RunningGateway, image_dir: Path,
) -> None:
    dsn = gateway.gateway.settings.database_url
    assert dsn
    pool = await open_pool(dsn, min_size=1, max_size=1, timeout_s=10)
    try:
        agent = token_for(await make_staff(pool, tenant_id=TENANT, name="Li"))
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=gateway.http, timeout=30) as http:
        admin = await admin_token(gateway, tenant=TENANT)
        visitor, token = visitor_token()
        async with connect(gateway, agent) as s_ws, connect(gateway, token) as v_ws:
            staff, guest = Client(s_ws), Client(v_ws)
            await staff.send({"action": "presence", "status": "online"})
            await staff.until("queue")
            form, _ = await upload(http, guest, png_with_text(), "image/png", "v-1")
            await guest.send({"action": "message", "client_msg_id": "v-1", "text": "看这个",
                              "image": form["upload_id"]})
            conversation_id = (await guest.until("ack"))["conversation_id"]
            await guest.send({"action": "handoff"})
            await guest.until("state", state="agent_joined")
            # GIVEN the agent took the conversation over; it shows the visitor's image
            await staff.send({"action": "open", "conversation_id": conversation_id})
            opened = await staff.until("conversation")
            shown = next(m for m in opened["messages"] if m.get("image"))
            assert (await http.get(shown["image"]["url"])).status_code == 200
            # WHEN the agent uploads a picture and replies with it
            reply_form, posted = await upload(http, staff, jpeg_with_exif(80, 60), "image/jpeg",
                                              "s-1", conversation_id=conversation_id)
            assert posted.status_code == 204
            await staff.send({"action": "reply", "conversation_id": conversation_id,
                              "client_msg_id": "s-1", "text": "",
                              "image": reply_form["upload_id"]})
            await staff.until("ack")
            # THEN the visitor receives it live, with a link to the clean picture
            message = await guest.until("message", role="agent")
            picture = await http.get(message["image"]["url"])
            assert decoded(picture.content).size == (80, 60) and GPS_MARK not in picture.content
        folder = image_dir / "images" / TENANT / conversation_id
        assert len([p for p in files_under(folder) if not p.name.endswith(".json")]) == 2
        # AND an export of the visitor's data links both pictures
        headers = {"authorization": f"Bearer {admin}"}
        exported = (await http.post("/v1/admin/personal-data/export", headers=headers,
                                    json={"visitor_id": visitor})).json()
        pictures = [m["image"] for c in exported["conversations"] for m in c["messages"]
                    if m.get("image")]
        assert [p["content_type"] for p in pictures] == ["image/png", "image/jpeg"]
        for picture_link in pictures:
            assert (await http.get(picture_link["url"])).status_code == 200
        assert "key" not in pictures[0]
        # WHEN the administrator erases the visitor
        erased = await http.post("/v1/admin/personal-data/erase",
                                 headers={"authorization": f"Bearer {admin}"},
                                 json={"visitor_id": visitor, "confirm": visitor})
        assert erased.status_code == 200, erased.text
        # THEN the images are counted, gone from disk, and their links find nothing
        assert erased.json()["images"] == 2
        assert files_under(folder) == {}
        assert (await http.get(message["image"]["url"])).status_code == 404
