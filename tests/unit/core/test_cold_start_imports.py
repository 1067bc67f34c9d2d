"""The WebSocket plumbing functions (connect, disconnect, message) start without the answer
stack: the composition root builds the LLM routers and the memory layer on first use, so
importing these functions loads neither them nor their heavy dependencies."""

from __future__ import annotations

from tests.support.imports import loaded_after

ANSWER_STACK = ("kefu_llm", "kefu_memory", "kefu_core.answers.memory",
                "kefu_core.answers.tenant_engines", "numpy", "openai")


def test_connect_and_message_functions_do_not_load_the_answer_stack() -> None:
    # GIVEN a fresh interpreter WHEN it imports what the plumbing functions import
    plumbing = ("from kefu_core.flows import handle_connect, handle_disconnect, handle_message\n"
                "from kefu_core.lambda_runtime import api_gateway_handler\n"
                "from kefu_core.deps import Deps\n")
    loaded = loaded_after(plumbing, ANSWER_STACK)
    # THEN nothing of the answer stack is loaded
    assert loaded == dict.fromkeys(ANSWER_STACK, False)


def test_the_stream_function_does_load_it() -> None:
    # GIVEN a fresh interpreter WHEN it imports the stream flow THEN the stack is there
    # (the check above can fail)
    loaded = loaded_after("from kefu_core.flows import handle_stream\n", ANSWER_STACK)
    assert loaded["kefu_llm"] and loaded["kefu_memory"]


def test_connect_and_disconnect_do_not_build_the_client_frame_models() -> None:
    # GIVEN a fresh interpreter WHEN it imports what connect and disconnect import
    loaded = loaded_after(
        "from kefu_core.flows import handle_connect, handle_disconnect\n"
        "from kefu_core.lambda_runtime import api_gateway_handler\n"
        "from kefu_core.deps import Deps\n", ("kefu_core.chat.protocol",))
    # THEN chat.protocol (sixteen pydantic models, for message) is not loaded
    assert loaded == {"kefu_core.chat.protocol": False}


def test_the_message_function_does_build_them() -> None:
    # GIVEN a fresh interpreter WHEN it imports the message flow THEN they are there (the
    # check above can fail)
    loaded = loaded_after("from kefu_core.flows import handle_message\n",
                          ("kefu_core.chat.protocol",))
    assert loaded == {"kefu_core.chat.protocol": True}
