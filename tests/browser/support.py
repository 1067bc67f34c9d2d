"""What the widget's browser tests share: Chromium, a company page on another origin, the frames
a page received, an agent on a real WebSocket, and screenshots kept in docs/screenshots/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import websockets

from kefu_core.product.tenants.bootstrap import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD
from tests.support.gateway import RunningGateway

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDGET = "document.querySelector('#kefu-widget').shadowRoot"
DEMO_ADMIN = (DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD)


def screenshot_path(name: str) -> str:
    """Where a test keeps a screenshot for the docs (docs/screenshots/NAME.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")


@contextlib.contextmanager
def host_page(html: str) -> Iterator[str]:
    """A company's page on another origin (another port) that embeds the widget."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shop"
    finally:
        server.shutdown()
        server.server_close()


def embed(gateway: RunningGateway, *, lang: str = "", attrs: str = "", title: str = "Shop") -> str:
    """A page whose <html lang> is ``lang`` (none when empty) embedding the widget, open."""
    lang_attr = f' lang="{lang}"' if lang else ""
    return (
        f"<!doctype html><html{lang_attr}><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title></head><body style='margin:0;font:16px serif'>"
        "<h1>Example shop</h1><p>Products, prices, the usual.</p>"
        f'<script src="{gateway.http}/web/widget.js" data-widget-key="demo-key" '
        f'data-open="true" {attrs} async></script></body></html>'
    )


class Frames:
    """Every WebSocket frame a page received, parsed."""

    def __init__(self, page: Any) -> None:
        self.items: list[dict[str, Any]] = []
        self._events: dict[str, asyncio.Event] = {}
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    async def wait(self, kind: str, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            await self._events.setdefault(kind, asyncio.Event()).wait()

    def _add(self, payload: Any) -> None:
        try:
            frame = json.loads(payload)
        except (ValueError, TypeError):
            return
        self.items.append(frame)
        self._events.setdefault(str(frame.get("type")), asyncio.Event()).set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.items if f.get("type") == kind]


async def say(page: Any, text: str) -> None:
    box = page.locator("form.compose textarea")
    await box.fill(text)
    await box.press("Enter")


async def admin_token(gateway: RunningGateway, email: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        login = await http.post("/v1/agent/login", json={
            "tenant": "demo", "email": email, "password": password})
        login.raise_for_status()
        return str(login.json()["token"])


class Agent:
    """An agent of the demo tenant on its own WebSocket, as the console would be."""

    def __init__(self, gateway: RunningGateway, token: str) -> None:
        self.gateway, self.token = gateway, token
        self.frames: list[dict[str, Any]] = []
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def create(cls, gateway: RunningGateway, admin: str, name: str) -> Agent:
        """A new agent named ``name`` (created by the admin whose token is ``admin``)."""
        email, password = f"agent-{uuid.uuid4().hex[:8]}@demo.test", "agent-password-1"
        async with httpx.AsyncClient(base_url=gateway.http) as http:
            made = await http.post("/v1/admin/agents", headers={"authorization": f"Bearer {admin}"},
                                   json={"email": email, "name": name, "password": password})
            made.raise_for_status()
        return cls(gateway, await admin_token(gateway, email, password))

    async def __aenter__(self) -> Agent:
        self._ws = await websockets.connect(f"{self.gateway.ws}?token={self.token}")
        self._reader = asyncio.create_task(self._read())
        await self.send({"action": "presence", "status": "online"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
        await self._ws.close()

    async def _read(self) -> None:
        async for raw in self._ws:
            self.frames.append(json.loads(raw))

    async def send(self, frame: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(frame))

    async def first(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if frame.get("type") == kind:
                        return frame
                await asyncio.sleep(0.05)


async def transcript(gateway: RunningGateway, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's stored messages, once no reply is still streaming."""
    token = await admin_token(gateway, *DEMO_ADMIN)
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        for _ in range(200):
            body = (await http.get(f"/v1/conversations/{conversation_id}",
                                   headers={"authorization": f"Bearer {token}"})).json()
            messages: list[dict[str, Any]] = body["messages"]
            if messages and messages[-1]["status"] != "streaming":
                return messages
            await asyncio.sleep(0.1)
    raise AssertionError("the reply never finished")


class StallingProxy:
    """A TCP proxy in front of the gateway that, once stalled, forwards nothing more in either
    direction and closes nothing: the sockets stay open, as behind a dead NAT or a lost Wi-Fi.
    Connections made while stalled are accepted and frozen too; after ``resume`` new ones flow
    again (the frozen ones stay frozen)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.stalled = False
        self.frozen: list[asyncio.StreamWriter] = []
        self._gen = 0
        self._server: asyncio.Server | None = None
        self._never = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def ws(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/prod"

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self.frozen:
            writer.close()

    def stall(self) -> None:
        self.stalled = True
        self._gen += 1

    def resume(self) -> None:
        self.stalled = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.append(task)
        if self.stalled:
            self.frozen.append(writer)
            await self._never.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        gen = self._gen
        await asyncio.gather(self._pump(reader, up_writer, gen, writer),
                             self._pump(up_reader, writer, gen, up_writer),
                             return_exceptions=True)
        for w in (writer, up_writer):
            if w not in self.frozen:
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gen: int,
                    peer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if gen != self._gen:  # stalled since this connection was made: hold it open, forever
                self.frozen.append(peer)
                await self._never.wait()
            writer.write(data)
            await writer.drain()


class Visitor:
    """A visitor of the demo tenant on a plain WebSocket, as the widget would be."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.visitor_id = ""
        self.frames: list[dict[str, Any]] = []
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Visitor:
        async with httpx.AsyncClient(base_url=self.gateway.http) as http:
            got = await http.post("/v1/visitor-token", json={"widget_key": "demo-key"})
            got.raise_for_status()
        body = got.json()
        self.visitor_id = body["visitor_id"]
        self._ws = await websockets.connect(f"{self.gateway.ws}?token={body['token']}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
        await self._ws.close()

    async def _read(self) -> None:
        async for raw in self._ws:
            self.frames.append(json.loads(raw))

    async def send(self, frame: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(frame))

    async def say(self, text: str) -> None:
        await self.send({"action": "message", "client_msg_id": f"c-{uuid.uuid4().hex[:12]}",
                         "text": text})

    async def first(self, kind: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if frame.get("type") == kind and all(frame.get(k) == v
                                                         for k, v in match.items()):
                        return frame
                await asyncio.sleep(0.05)
