"""A real small model (SmolLM2-135M-Instruct on node-llama-cpp, fixtures/local-model)
behind Ollama's API, through the agent's own client, `OllamaReasoner`.

One server for the module (tests.support.local_model). With `tools`, the server
constrains the model's output to a call of one of them with arguments following its
schema: these tests check that contract (exactly one call, `check_call` accepts it), not
whether a 135M model chooses well; what it chose is printed (``pytest -s``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bzzz.domain.execution import ChatMessage, Reply, ToolCall
from bzzz.domain.tools import TOOL_NAMES, TOOLS, Action, check_call
from bzzz.domain.work import system_prompt
from bzzz.errors import ReasoningError
from bzzz.execution.ollama import OllamaReasoner
from tests.support.local_model import MODEL_NAME, LocalModel, missing, start_local_model

pytestmark = pytest.mark.slow

HELLO = "Create a file hello.txt containing the word hello. Use the write_file tool."
ASK = [
    ChatMessage("system", system_prompt(None, "developer")),
    ChatMessage("user", HELLO),
]


@pytest.fixture(scope="module")
def served() -> Iterator[LocalModel]:
    reason = missing()
    if reason is not None:
        pytest.fail(f"the local model is not installed: {reason}")
    with start_local_model(timeout_s=60) as local:
        print(
            f"\nlocal model: loaded in {local.load_seconds:.2f} s, "
            f"answering in {local.start_seconds:.2f} s"
        )
        yield local


@pytest.fixture
def reasoner(served: LocalModel) -> OllamaReasoner:
    return OllamaReasoner(served.url, timeout_s=60, turn_timeout_s=120)


def post(url: str, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """A raw POST; the status and the JSON lines of the answer."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, [json.loads(line) for line in raw.splitlines() if line.strip()]


def tools_body() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            },
        }
        for t in TOOLS
    ]


def one_valid_call(reply: Reply) -> Action:
    assert len(reply.tool_calls) == 1, reply
    call = reply.tool_calls[0]
    assert call.name in TOOL_NAMES
    assert isinstance(call.arguments, dict), call
    action = check_call(call)
    assert isinstance(action, Action), action
    return action


async def test_models_lists_the_model_with_its_context_length(reasoner: OllamaReasoner) -> None:
    models = await reasoner.models()
    assert [m.name for m in models] == [MODEL_NAME]
    info = models[0]
    assert info.context_length == 4096  # what the server runs with (--ctx)
    assert info.details["family"] == "llama"
    assert info.details["parameter_size"] == "134.52M"
    assert info.details["quantization_level"] == "Q4_1"
    assert "tools" in info.details["capabilities"]


async def test_a_chat_with_the_six_tools_makes_one_valid_call(reasoner: OllamaReasoner) -> None:
    reply = await reasoner.chat(MODEL_NAME, ASK, TOOLS, max_tokens=128)
    action = one_valid_call(reply)
    assert reply.content == ""
    assert reply.model == MODEL_NAME
    assert reply.prompt_tokens > 200  # the rules, the task and the tools' description
    assert 0 < reply.completion_tokens <= 128
    print(
        f"\n{HELLO!r} -> {reply.tool_calls[0].name} {json.dumps(action.arguments)} "
        f"({reply.completion_tokens} tokens in {reply.seconds:.2f} s)"
    )


async def test_not_streaming_answers_one_object_with_the_same_call(
    served: LocalModel, reasoner: OllamaReasoner
) -> None:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": m.role, "content": m.content} for m in ASK],
        "tools": tools_body(),
        "stream": False,
        "options": {"num_predict": 128, "temperature": 0},
    }
    status, lines = post(f"{served.url}/api/chat", body)
    assert status == 200
    assert len(lines) == 1
    answer = lines[0]
    assert answer["done"] is True and answer["done_reason"] == "stop"
    assert answer["model"] == MODEL_NAME
    assert answer["message"]["role"] == "assistant" and answer["message"]["content"] == ""
    for key in ("total_duration", "prompt_eval_count", "eval_count", "eval_duration"):
        assert isinstance(answer[key], int) and answer[key] > 0, key
    (call,) = answer["message"]["tool_calls"]
    function = call["function"]
    assert isinstance(function["arguments"], dict)
    assert isinstance(check_call(ToolCall(function["name"], function["arguments"])), Action)

    # Greedy at temperature 0: the streamed answer makes the very same call.
    streamed = await reasoner.chat(MODEL_NAME, ASK, TOOLS, max_tokens=128)
    assert streamed.tool_calls[0].name == function["name"]
    assert streamed.tool_calls[0].arguments == function["arguments"]


async def test_a_tool_result_goes_back_and_the_next_turn_is_a_valid_call(
    reasoner: OllamaReasoner,
) -> None:
    wrote = ToolCall("write_file", {"path": "hello.txt", "content": "hello\n"})
    messages = [
        *ASK,
        ChatMessage("assistant", "", tool_calls=(wrote,)),
        ChatMessage("tool", "wrote hello.txt (6 bytes)", tool_name="write_file"),
    ]
    reply = await reasoner.chat(MODEL_NAME, messages, TOOLS, max_tokens=96)
    action = one_valid_call(reply)
    print(f"\nafter the write -> {reply.tool_calls[0].name} {json.dumps(action.arguments)}")


async def test_without_tools_text_streams_in_ndjson_lines(
    served: LocalModel, reasoner: OllamaReasoner
) -> None:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Write a Python function that adds two numbers."}],
        "options": {"num_predict": 48, "temperature": 0},
    }
    started = time.monotonic()
    status, lines = post(f"{served.url}/api/chat", body)
    assert status == 200
    *chunks, done = lines
    assert len(chunks) > 5
    assert all(c["done"] is False and isinstance(c["message"]["content"], str) for c in chunks)
    assert done["done"] is True and done["done_reason"] == "length"
    assert done["eval_count"] == 48
    text = "".join(c["message"]["content"] for c in chunks)
    assert text.strip()
    rate = done["eval_count"] / (done["eval_duration"] / 1e9)
    print(f"\n48 tokens in {time.monotonic() - started:.2f} s: {rate:.1f} tokens/s; {text!r}")

    reply = await reasoner.chat(MODEL_NAME, [ChatMessage("user", "Say hello.")], (), max_tokens=16)
    assert reply.content.strip() and reply.tool_calls == ()
    assert reply.completion_tokens == 16


async def test_an_unknown_model_is_a_reasoning_error(reasoner: OllamaReasoner) -> None:
    with pytest.raises(ReasoningError, match=r"model 'qwen2\.5-coder:7b' not found"):
        await reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS)


async def test_a_bad_request_is_a_reasoning_error(reasoner: OllamaReasoner) -> None:
    with pytest.raises(ReasoningError, match=r"HTTP 400.*invalid role"):
        await reasoner.chat(MODEL_NAME, [ChatMessage("wizard", "hi")], ())


def test_errors_are_json_with_a_status(served: LocalModel) -> None:
    status, lines = post(f"{served.url}/api/show", {"model": "nope"})
    assert (status, lines) == (404, [{"error": "model 'nope' not found"}])
    status, lines = post(f"{served.url}/api/chat", {"messages": []})
    assert (status, lines) == (400, [{"error": "model is required"}])
