"""Public data types: the request going in and the events coming out of `Router.stream`, and
what passes between the router and an engine (`EngineCall` in, `EngineOutcome` back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "Busy",
    "ChatMessage",
    "ChatRequest",
    "Delta",
    "EngineCall",
    "EngineOutcome",
    "Event",
    "Final",
]

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    """One message of the conversation as the model sees it. ``images``: pictures that go with
    it (``data:image/...;base64,...`` URLs); only engines configured with ``images: true`` are
    sent them, the others see ``content`` alone."""

    role: Role
    content: str
    images: list[str] = Field(default_factory=list)


class ChatRequest(BaseModel):
    """What the core asks the adapter for: a reply to ``messages`` grounded in ``passages``."""

    tenant_id: str
    conversation_id: str
    messages: list[ChatMessage]
    passages: list[str] = Field(default_factory=list)
    # Further search results after ``passages``, never shown to a model: only engines that
    # judge each passage themselves (the offline engine, ``OFFLINE_CANDIDATES``) read them.
    more_passages: list[str] = Field(default_factory=list)
    kb_version: str = "0"
    max_tokens: int | None = None
    temperature: float | None = None
    language: str | None = None
    # False: the first engine of the chain only (no other engine, no offline last resort),
    # as ENABLE_FALLBACK=false does for every request; a tenant's own setting.
    fallback: bool = True


@dataclass(slots=True, frozen=True)
class Delta:
    """A piece of the answer, PII already restored."""

    text: str


@dataclass(slots=True, frozen=True)
class Final:
    """Always the last event of a reply.

    ``status`` is ``incomplete`` when the stream broke after the first token and was not
    continued; ``reason`` then says why (``cut``, ``stall``, ``malformed``, ``total_timeout``...).
    For a complete reply ``reason`` is ``None`` or says how it was produced (``length`` when
    the token limit ended it, ``continued_on:<engine>`` after a mid-stream continuation).
    """

    text: str
    status: Literal["complete", "incomplete"]
    engine: str
    fallback_used: bool = False
    cached: bool = False
    reason: str | None = None
    # Structured signals for the conversation: the model asked for a human agent (a tool call,
    # never parsed from text); the engine had nothing to answer from (a "don't know" reply).
    handoff: bool = False
    answered: bool = True


@dataclass(slots=True, frozen=True)
class Busy:
    """Rate limited: nothing was sent; retry after ``retry_after_s`` seconds."""

    retry_after_s: float
    scope: str


Event = Delta | Final | Busy


@dataclass(slots=True, frozen=True)
class EngineCall:
    """What an engine receives: messages already redacted, passages already redacted."""

    messages: list[dict[str, str]]
    passages: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    language: str = "zh"
    # Search results after ``passages``, for the offline engine only (never sent to a model;
    # empty in the redacted copy remote engines get).
    more_passages: list[str] = field(default_factory=list)
    # Pictures of messages, by the message's index in ``messages`` (data URLs); an engine that
    # does not read images never sends them.
    images: dict[int, list[str]] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class EngineOutcome:
    """How an engine's stream ended normally: its last item, after the text pieces.

    ``finish_reason`` is the model's (``stop``, ``length``, ``tool_calls``...); ``handoff``: the
    model called the handoff tool; ``answered`` is false when the engine had nothing to answer
    from (the offline engine's refusal). The router carries them into `Final`.
    """

    finish_reason: str | None = None
    handoff: bool = False
    answered: bool = True
