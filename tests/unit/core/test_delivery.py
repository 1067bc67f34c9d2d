"""Delivery to the connections watching a conversation (kefu_core.chat.delivery)."""

from __future__ import annotations

from typing import Any

import pytest

from kefu_core.chat.delivery import Audience, broadcast
from kefu_core.infra.errors import GoneError


class FakePoster:
    def __init__(self, gone: set[str]) -> None:
        self.gone = gone
        self.posted: list[tuple[str, str]] = []

    async def post(self, connection_id: str, data: str) -> None:
        if connection_id in self.gone:
            raise GoneError(connection_id)
        self.posted.append((connection_id, data))

    async def close(self, connection_id: str) -> None:
        return None


class FakeConnections:
    def __init__(self, watching: list[str]) -> None:
        self.watching = list(watching)
        self.removed: list[tuple[str, str | None]] = []

    async def watchers(self, conversation_id: str) -> list[str]:
        return list(self.watching)

    async def remove(self, connection_id: str, *, conversation_id: str | None = None) -> None:
        self.removed.append((connection_id, conversation_id))
        if connection_id in self.watching:  # as the registry does: no longer a watcher
            self.watching.remove(connection_id)


class FakeDeps:
    def __init__(self, watching: list[str], gone: set[str] | None = None) -> None:
        self.poster = FakePoster(gone or set())
        self.connections = FakeConnections(watching)


FRAME: Any = {"type": "typing", "conversation_id": "c1", "role": "visitor"}


@pytest.mark.parametrize("watching", [["a"], ["a", "b", "c"]])
async def test_a_broadcast_reaches_every_watcher_but_the_excluded_one(watching: list[str]) -> None:
    # GIVEN one or several connections watching a conversation, and its sender among them
    deps = FakeDeps([*watching, "sender"])
    # WHEN a frame is broadcast from the sender
    delivered = await broadcast(deps, "c1", FRAME, exclude="sender")  # type: ignore[arg-type]
    # THEN every other watcher got it once
    assert delivered == len(watching)
    assert sorted(c for c, _ in deps.poster.posted) == sorted(watching)


@pytest.mark.parametrize("watching", [["gone"], ["gone", "b"]])
async def test_a_gone_watcher_is_forgotten_and_not_counted(watching: list[str]) -> None:
    # GIVEN a watcher whose connection is gone, alone or beside another
    deps = FakeDeps(watching, gone={"gone"})
    audience = Audience(deps, "c1")  # type: ignore[arg-type]
    # WHEN a reply's frames are sent to the audience
    first = await audience.send(FRAME)
    second = await audience.send(FRAME)
    # THEN the gone one is forgotten (its record removed once) and the others get each frame
    assert first == second == len(watching) - 1
    assert deps.connections.removed == [("gone", "c1")]
    assert [c for c, _ in deps.poster.posted] == [c for c in watching if c != "gone"] * 2


async def test_a_tab_that_joins_mid_reply_gets_the_final_frame() -> None:
    # GIVEN a reply whose deltas went to the visitor's one tab
    deps = FakeDeps(["tab-1"])
    audience = Audience(deps, "c1")  # type: ignore[arg-type]
    await audience.send(FRAME)
    # WHEN a second tab starts watching and the reply ends at once (before any refresh is due)
    deps.connections.watching.append("tab-2")
    await audience.send(FRAME)
    delivered = await audience.send(FRAME, fresh=True)
    # THEN the next delta still went to the first tab alone, and the final frame to both
    assert [c for c, _ in deps.poster.posted] == ["tab-1", "tab-1", "tab-1", "tab-2"]
    assert delivered == 2


async def test_a_tab_that_reconnects_mid_reply_gets_the_next_delta() -> None:
    # GIVEN a reply streaming to the visitor's one tab
    deps = FakeDeps(["old"])
    audience = Audience(deps, "c1")  # type: ignore[arg-type]
    await audience.send(FRAME)
    # WHEN its connection drops and the tab is back on a new one, within the refresh interval
    deps.poster.gone.add("old")
    deps.connections.watching[:] = ["new"]
    await audience.send(FRAME)
    await audience.send(FRAME)
    # THEN the delta after the failed one already reaches the new connection
    assert [c for c, _ in deps.poster.posted] == ["old", "new"]
