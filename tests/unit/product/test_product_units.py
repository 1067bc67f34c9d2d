"""Unit tests of the product layer's pure parts: frames, keywords, redaction, passwords,
signed identities and the customer view's graceful degradation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from fastapi import HTTPException

from kefu_core.admin.routers.visitor import verify_identity as _verify_identity
from kefu_core.chat.protocol import (
    ConversationActionFrame,
    CsatFrame,
    ReplyFrame,
    TransferFrame,
    parse_client_frame,
)
from kefu_core.infra.errors import BadFrame
from kefu_core.product.audit import REDACTED, redact_value
from kefu_core.product.customer import customer_view
from kefu_core.product.handoff.moves import matches_keyword
from kefu_core.product.tenants.passwords import DUMMY_HASH, hash_password, verify_password
from kefu_core.product.tenants.settings import TenantSettings

CID = "0b6f1f7e-8a43-4f7b-9c1e-2a3b4c5d6e7f"


def parse(body: str) -> Any:
    return parse_client_frame(body, max_frame_bytes=32 * 1024, max_text_chars=100)


def test_agent_and_visitor_frames_parse_into_their_models() -> None:
    assert isinstance(parse(f'{{"action":"take","conversation_id":"{CID}"}}'),
                      ConversationActionFrame)
    reply = parse(f'{{"action":"reply","conversation_id":"{CID}","client_msg_id":"a-1",'
                  f'"text":"  hi  "}}')
    assert isinstance(reply, ReplyFrame) and reply.text == "hi"
    assert isinstance(parse(f'{{"action":"transfer","conversation_id":"{CID}",'
                            f'"agent_id":"a-1"}}'), TransferFrame)
    assert isinstance(parse('{"action":"csat","score":5}'), CsatFrame)


@pytest.mark.parametrize("body, code", [
    ('{"action":"csat","score":6}', "invalid_frame"),
    ('{"action":"take","conversation_id":"../../etc"}', "invalid_frame"),
    (f'{{"action":"reply","conversation_id":"{CID}","client_msg_id":"a","text":"{"x" * 101}"}}',
     "text_too_long"),
    (f'{{"action":"reply","conversation_id":"{CID}","client_msg_id":"a","text":"   "}}',
     "empty_text"),
    ('{"action":"presence","status":"asleep"}', "invalid_frame"),
])
def test_bad_product_frames_are_refused_with_a_code(body: str, code: str) -> None:
    with pytest.raises(BadFrame) as info:
        parse(body)
    assert info.value.code == code


def test_default_keywords_cover_chinese_and_english() -> None:
    keywords = TenantSettings().handoff_keywords
    for text in ("转人工", "我要人工客服", "I want a human please", "talk to a person"):
        assert matches_keyword(text, keywords), text
    for text in ("你们的退货政策", "what is an agency fee", "humane treatment"):
        assert not matches_keyword(text, keywords), text


def test_redact_value_walks_structures_and_fails_closed() -> None:
    assert redact_value({"a": ["x", 1, None, True]}, str.upper) == {"a": ["X", 1, None, True]}

    def broken(text: str) -> str:
        raise ValueError("no")

    assert redact_value({"t": "13812345678"}, broken) == {"t": REDACTED}
    assert "13812345678" not in str(redact_value({"t": "call 13812345678"}))


def test_passwords_hash_with_salt_and_verify() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("s3cret-pass", first) and not verify_password("other", first)
    assert not verify_password("s3cret-pass", "garbage")


def test_unknown_address_hash_has_the_real_parameters_and_matches_no_password() -> None:
    # GIVEN the hash an unknown address is checked against, and a real account's hash
    real = hash_password("s3cret-pass")
    # THEN it is parsed like a real one (same scheme, cost and digest length: the same work)
    assert DUMMY_HASH.split("$")[:4] == real.split("$")[:4]
    assert len(DUMMY_HASH.split("$")[5]) == len(real.split("$")[5])
    # AND no password matches it
    for password in ("", "s3cret-pass", DUMMY_HASH):
        assert not verify_password(password, DUMMY_HASH)


def test_signed_identity_is_verified_with_the_tenant_secret() -> None:
    secret = "ids_" + "k" * 40
    good = jwt.encode({"sub": "cust-42", "name": "王先生", "exp": int(time.time()) + 60},
                      secret, algorithm="HS256")
    assert _verify_identity(good, secret) == ("cust-42", "王先生")
    for bad in (
        jwt.encode({"sub": "cust-42", "exp": int(time.time()) + 60}, "other" * 8,
                   algorithm="HS256"),
        jwt.encode({"sub": "cust-42", "exp": int(time.time()) - 60}, secret, algorithm="HS256"),
        jwt.encode({"sub": "cust-42"}, secret, algorithm="HS256"),
        jwt.encode({"sub": "a/b", "exp": int(time.time()) + 60}, secret, algorithm="HS256"),
    ):
        with pytest.raises(HTTPException) as info:
            _verify_identity(bad, secret)
        assert info.value.status_code == 403


class _Context:
    def __init__(self, *, business: Any = None, facts: Any = None, delay: float = 0) -> None:
        self._business, self._facts, self._delay = business, facts, delay

    async def business(self, *, tenant_id: str, customer_id: str) -> Any:
        await asyncio.sleep(self._delay)
        if isinstance(self._business, Exception):
            raise self._business
        return self._business

    async def facts(self, *, tenant_id: str, customer_id: str) -> Any:
        return self._facts


async def test_customer_view_degrades_source_by_source() -> None:
    view = await customer_view(_Context(business={"customer": {"id": "c1"}}, facts=[]),
                               tenant_id="t", visitor_id="cust:c1", customer_id="c1")
    assert view["business"] == {"customer": {"id": "c1"}} and view["unavailable"] == {}
    failing = await customer_view(_Context(business=RuntimeError("crm down")),
                                  tenant_id="t", visitor_id="cust:c1", customer_id="c1")
    assert failing["unavailable"] == {"business": "error", "facts": "not_configured"}
    late = await customer_view(_Context(business={}, delay=1), tenant_id="t",
                               visitor_id="cust:c1", customer_id="c1", deadline_s=0.05)
    assert late["unavailable"]["business"] == "timeout"
    anonymous = await customer_view(_Context(facts=[{"key": "city"}]), tenant_id="t",
                                    visitor_id="v-1", customer_id=None)
    assert anonymous["unavailable"] == {"business": "anonymous_visitor"}
    assert anonymous["facts"] == [{"key": "city"}]
