"""Pictures in requests: only engines configured with ``images: true`` are sent them."""

from __future__ import annotations

from kefu_llm import (
    AdapterSettings,
    ChatMessage,
    ChatRequest,
    EngineCall,
    EngineConfig,
    build_router,
)
from kefu_llm._openai_engine import build_messages

PHOTO = "data:image/jpeg;base64,/9j/4AAQ"


def _call() -> EngineCall:
    return EngineCall(messages=[{"role": "system", "content": "be kind"},
                                {"role": "user", "content": "[image] 这个坏了"}],
                      passages=["保修一年"], images={1: [PHOTO]})


def test_an_engine_that_reads_images_gets_the_picture_after_the_text() -> None:
    # GIVEN a question with a picture, and passages that join as a system message
    # WHEN the messages are built for an engine that reads images
    messages = build_messages(_call(), redacted=True, images=True)
    # THEN the question is a text part and an image_url part; the others stay plain text
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert messages[2]["content"] == [{"type": "text", "text": "[image] 这个坏了"},
                                      {"type": "image_url", "image_url": {"url": PHOTO}}]
    assert isinstance(messages[0]["content"], str)


def test_an_engine_that_does_not_read_images_never_gets_one() -> None:
    # WHEN the same call is built for an engine without ``images``
    messages = build_messages(_call(), redacted=False, images=False)
    # THEN the question is its text alone, the placeholder where the picture was
    assert messages[-1] == {"role": "user", "content": "[image] 这个坏了"}
    assert "image_url" not in repr(messages)


def test_the_chain_says_whether_any_engine_reads_images() -> None:
    # GIVEN chains with and without an engine configured to read images
    def chain(*images: bool) -> object:
        return build_router(settings=AdapterSettings(
            engines=[EngineConfig(name=f"e{i}", model="m", api_keys=["k"], images=flag)
                     for i, flag in enumerate(images)],
            openai_api_key=None, openai_base_url=None), redis=None)

    # THEN the router says so (the core reads a picture only then)
    assert chain(False, True).sees_images is True  # type: ignore[attr-defined]
    assert chain(False).sees_images is False  # type: ignore[attr-defined]


def test_a_request_with_a_picture_carries_it_by_message_index() -> None:
    # GIVEN a request whose question has a picture
    request = ChatRequest(tenant_id="t", conversation_id="c", messages=[
        ChatMessage(role="system", content="s"),
        ChatMessage(role="user", content="[image] hi", images=[PHOTO])])
    router = build_router(settings=AdapterSettings(
        engines=[EngineConfig(name="e", model="m", api_keys=["k"], images=True)],
        openai_api_key=None, openai_base_url=None), redis=None)
    # WHEN the engines' call is made THEN the picture travels with its message's index, also
    # in the redacted copy remote engines get
    calls = router._engine_calls(request)
    assert calls.plain.images == {1: [PHOTO]}
    assert calls.redacted is not None and calls.redacted.images == {1: [PHOTO]}
