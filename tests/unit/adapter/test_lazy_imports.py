"""kefu_llm loads its engines on first use: PII redaction and URL checks stay light.

The WebSocket plumbing functions (connect, disconnect, message) redact every log record with
kefu_llm's PII module and ship without openai and tiktoken (their Lambda layers do not carry
them), so neither may be imported on that path.
"""

from __future__ import annotations

import kefu_llm
from tests.support.imports import loaded_after

HEAVY = ("openai", "tiktoken", "numpy", "jieba")


def _loaded_after(code: str) -> dict[str, bool]:
    return loaded_after(code, HEAVY)


def test_redaction_and_url_checks_do_not_import_engines_or_tokenizers() -> None:
    # GIVEN a fresh interpreter
    # WHEN it redacts a text and checks an outbound URL through kefu_llm
    loaded = _loaded_after(
        "import kefu_llm\n"
        "from kefu_llm.netguard import OutboundPolicy\n"
        "assert kefu_llm.redact_text('call 13812345678') != 'call 13812345678'\n"
        "assert OutboundPolicy is not None\n"
        "assert issubclass(kefu_llm.RedactionError, Exception)\n"
    )
    # THEN none of the heavy packages was imported
    assert loaded == dict.fromkeys(HEAVY, False)


def test_token_counting_loads_tiktoken_on_first_use() -> None:
    # GIVEN a fresh interpreter WHEN it counts tokens THEN tiktoken is loaded (the test can fail)
    loaded = _loaded_after("import kefu_llm\nassert kefu_llm.count_tokens('hello world') > 0\n")
    assert loaded["tiktoken"] is True


def test_every_public_name_resolves() -> None:
    # GIVEN the package's public surface WHEN each name is read THEN it resolves
    for name in kefu_llm.__all__:
        assert getattr(kefu_llm, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        kefu_llm.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")
