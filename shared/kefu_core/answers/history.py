"""The conversation a reply sends the model: the turns before the question within a budget.

A reply sends the last ``CONTEXT_WINDOW`` rounds. A visitor message may hold
``MAX_TEXT_CHARS`` characters (4,000 Chinese characters are about 4,800 tokens), so ten such
rounds are over 50,000 tokens: past the context of smaller models (the engine refuses and the
reply falls back or fails) and costly on every later reply. When the turns before the question
exceed ``HISTORY_TOKEN_BUDGET`` tokens, the older ones are compressed with
``kefu_llm.compress_history`` (extractive: no model call, nothing leaves the process; the last
turns stay verbatim while they fit a share of the budget). The tenant's knowledge-base names and
catalogue values found in the history are kept whole and preferred (``find_terms``). The
question itself is never compressed. An ordinary conversation (ten
rounds are about 650 tokens on CrossWOZ) is far below the budget and sent as it is.

The token counter (tiktoken) is loaded on the first reply, with the router, not at import
(``kefu_llm`` loads its names on first use): the stream function's cold start stays as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

import kefu_llm
from kefu_llm import ChatMessage

__all__ = ["TermFinder", "fit_history"]


TermFinder = Callable[[str], Iterable[str]]


def _compress(messages: Sequence[ChatMessage], budget_tokens: int,
              find_terms: TermFinder | None) -> list[ChatMessage]:
    terms = list(find_terms("\n".join(m.content for m in messages))) if find_terms else []
    return asyncio.run(kefu_llm.compress_history(messages, budget_tokens=budget_tokens,
                                                 key_terms=terms))


def _surely_within(messages: Sequence[ChatMessage], budget_tokens: int) -> bool:
    """Within the budget without tokenizing: a token is at least one UTF-8 byte, and the chat
    format adds a few per message (kefu_llm counts 3 + 3 per message + 1 for the role)."""
    return 3 + sum(4 + len(m.content.encode("utf-8")) for m in messages) <= budget_tokens


async def fit_history(
    messages: Sequence[ChatMessage], *, budget_tokens: int, find_terms: TermFinder | None = None
) -> list[ChatMessage]:
    """``messages`` (the turns before the question) within ``budget_tokens``; 0 keeps all.

    ``find_terms`` gives the words of a text worth keeping whole (the tenant's knowledge-base
    names and catalogue values, ``EntityIndex.terms_in``); it is called only when the history
    is compressed. Compression is CPU work (about a second for 50,000 tokens), so it runs in a
    worker thread: the gateway's event loop keeps serving the other connections meanwhile."""
    if budget_tokens <= 0 or not messages or _surely_within(messages, budget_tokens) or \
            kefu_llm.count_tokens(list(messages)) <= budget_tokens:
        return list(messages)
    return await asyncio.to_thread(_compress, messages, budget_tokens, find_terms)
