"""The gateway builds events of the shape API Gateway sends (compared with events/*.json)."""

from __future__ import annotations

import json
from pathlib import Path

from kefu_core.chat.events import WebSocketEvent
from kefu_core.gateway.events import (
    EventSource,
    connect_event,
    disconnect_event,
    message_event,
    new_connection_id,
    route_for,
)
from kefu_core.gateway.limits import FloodGuard

EVENTS = Path(__file__).resolve().parents[3] / "events"
COMMON = {"connection_id": "abc=", "connected_at_ms": 1, "domain_name": "localhost:8080",
          "stage": "prod", "source_ip": "127.0.0.1", "api_id": "kefu-local"}


def keys(obj: object) -> set[str]:
    return set(obj) if isinstance(obj, dict) else set()


def test_route_selection_on_body_action() -> None:
    routes = frozenset({"message"})
    assert route_for('{"action":"message"}', routes=routes) == "message"
    assert route_for('{"action":"sync"}', routes=routes) == "$default"
    assert route_for("not json", routes=routes) == "$default"
    assert route_for('"a string"', routes=routes) == "$default"


def test_connect_event_has_the_sample_shape() -> None:
    # GIVEN the sample API Gateway connect event and one the gateway builds
    sample = json.loads((EVENTS / "connect.json").read_text())
    built = connect_event(EventSource(**COMMON), headers={"Host": "x"}, query={"token": ["t"]})
    # THEN top-level and requestContext keys match
    assert keys(sample) <= keys(built) | {"multiValueQueryStringParameters"}
    assert keys(sample["requestContext"]) <= keys(built["requestContext"])
    parsed = WebSocketEvent.model_validate(built)
    assert parsed.request_context.event_type == "CONNECT"
    assert parsed.query("token") == "t"


def test_message_and_disconnect_events_have_the_sample_shape() -> None:
    for name, built in (
        ("message.json", message_event(EventSource(**COMMON, user_agent="ua"),
                                       route_key="message", body="{}")),
        ("disconnect.json", disconnect_event(EventSource(**COMMON), status_code=1000,
                                             reason="bye")),
    ):
        sample = json.loads((EVENTS / name).read_text())
        assert keys(sample["requestContext"]) - {"identity"} <= keys(built["requestContext"]), name
        assert sample["requestContext"]["eventType"] == built["requestContext"]["eventType"]


def test_connection_ids_are_unique_and_path_safe() -> None:
    ids = {new_connection_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all("/" not in i and "+" not in i for i in ids)


def test_flood_guard_limits_frames_per_connection() -> None:
    guard = FloodGuard(frames_per_s=1, frame_burst=5)
    allowed = [guard.allow_message("c1") for _ in range(10)]
    assert allowed.count(True) == 5
    assert guard.allow_message("c2")


def test_flood_guard_limits_connects_per_address() -> None:
    # GIVEN a burst of 3 connects per address, refilled very slowly
    guard = FloodGuard(connects_per_s=0.001, connect_burst=3)
    # WHEN one address connects 5 times
    allowed = [guard.allow_connect("198.51.100.1") for _ in range(5)]
    # THEN 3 are allowed, and another address has its own bucket
    assert allowed == [True, True, True, False, False]
    assert guard.allow_connect("198.51.100.2")


def test_new_addresses_do_not_reset_a_flooding_one() -> None:
    # GIVEN a guard that remembers 2 addresses, and one address that used its burst
    guard = FloodGuard(connects_per_s=0.001, connect_burst=1, max_ips=2)
    assert guard.allow_connect("203.0.113.9")
    assert not guard.allow_connect("203.0.113.9")
    # WHEN new addresses keep arriving while it keeps trying
    for i in range(5):
        assert guard.allow_connect(f"198.51.100.{i}")
        # THEN it stays refused: the least recently seen address is forgotten, not all
        assert not guard.allow_connect("203.0.113.9")
