"""Identifiers whose length is a constraint of its own rather than a ``{m,n}`` of their
pattern (pydantic's regex engine compiles a repeated Unicode ``\\w`` once per repetition, at
every cold start): the same strings are accepted and refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kefu_core.flows.personal_data.subject import CustomerRef
from kefu_core.product.canned_replies import CannedReply


@pytest.mark.parametrize("shortcut", ["refund", "退款", "a", "x" * 32, "re-fund_2"])
def test_a_canned_reply_shortcut_of_1_to_32_word_characters_is_accepted(shortcut: str) -> None:
    # GIVEN letters (any script), digits, _ or -, 1 to 32 of them WHEN validated THEN kept
    assert CannedReply(shortcut=shortcut, text="ok").shortcut == shortcut


@pytest.mark.parametrize("shortcut", ["", "x" * 33, "退" * 33, "no spaces", "/refund", "a.b"])
def test_any_other_shortcut_is_refused(shortcut: str) -> None:
    # GIVEN an empty, too long or non-word shortcut WHEN validated THEN it is refused
    with pytest.raises(ValidationError) as caught:
        CannedReply(shortcut=shortcut, text="ok")
    assert [e["loc"] for e in caught.value.errors()] == [("shortcut",)]


@pytest.mark.parametrize("customer_id", ["c", "crm:42", "a.b@example.com", "客户+1", "x" * 100])
def test_a_customer_id_of_1_to_100_allowed_characters_is_accepted(customer_id: str) -> None:
    assert CustomerRef(customer_id=customer_id).customer_id == customer_id


@pytest.mark.parametrize("customer_id", ["", "x" * 101, "a b", "a/b", "a#b"])
def test_any_other_customer_id_is_refused(customer_id: str) -> None:
    with pytest.raises(ValidationError):
        CustomerRef(customer_id=customer_id)
