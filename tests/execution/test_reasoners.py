"""The reasoning backends against stand-ins speaking the real protocols over real HTTP:
Ollama's native API, the OpenAI-compatible chat completions API, and replay."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.domain.execution import ChatMessage, Reply, ToolCall, ToolSpec
from bzzz.errors import ReasoningError
from bzzz.execution.ollama import OllamaReasoner
from bzzz.execution.openai import OpenAIReasoner
from bzzz.execution.replay import ReplayReasoner, dump_turns, load_turns
from tests.support.ollama_standin import OllamaStandin
from tests.support.openai_standin import OpenAIStandin

TOOLS = (
    ToolSpec(
        "read_file",
        "Read a file of the worktree.",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    ),
    ToolSpec(
        "run",
        "Run a shell command in the sandbox.",
        {"type": "object", "properties": {"command": {"type": "string"}}},
    ),
)
ASK = [
    ChatMessage("system", "You are a coding agent."),
    ChatMessage("user", "Fix the bug."),
]
KEY = "sk-canary-5f3e9a1b7c"


@pytest.fixture
def ollama() -> Iterator[OllamaStandin]:
    with OllamaStandin({"qwen2.5-coder:7b": 32768, "tiny:latest": None}) as standin:
        yield standin


@pytest.fixture
def openai() -> Iterator[OpenAIStandin]:
    with OpenAIStandin(["local-model"], api_key=KEY) as standin:
        yield standin


def one_line(error: pytest.ExceptionInfo[ReasoningError]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Ollama


async def test_ollama_models_and_context_length(ollama: OllamaStandin) -> None:
    reasoner = OllamaReasoner(ollama.url, timeout_s=5)
    models = await reasoner.models()
    assert [(m.name, m.context_length) for m in models] == [
        ("qwen2.5-coder:7b", 32768),
        ("tiny:latest", None),
    ]
    assert models[0].details["parameter_size"] == "7.6B"
    assert "tools" in models[0].details["capabilities"]
    assert ollama.paths() == ["/api/tags", "/api/show", "/api/show"]
    assert [r.body for r in ollama.requests[1:]] == [
        {"model": "qwen2.5-coder:7b"},
        {"model": "tiny:latest"},
    ]
    assert reasoner.name == "ollama"


async def test_ollama_text_turn(ollama: OllamaStandin) -> None:
    ollama.reply_text("I will read the file first.", prompt_tokens=42, eval_tokens=8)
    reply = await OllamaReasoner(ollama.url, timeout_s=5).chat(
        "qwen2.5-coder:7b", ASK, TOOLS, max_tokens=256
    )
    assert reply.content == "I will read the file first."
    assert reply.tool_calls == ()
    assert (reply.model, reply.prompt_tokens, reply.completion_tokens) == (
        "qwen2.5-coder:7b",
        42,
        8,
    )
    assert reply.seconds > 0
    sent = ollama.chats[0]
    assert sent["stream"] is True
    assert sent["options"] == {"num_predict": 256}
    assert sent["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the bug."},
    ]
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file of the worktree.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }


async def test_ollama_tool_calls_and_results_sent_back(ollama: OllamaStandin) -> None:
    reasoner = OllamaReasoner(ollama.url, timeout_s=5)
    ollama.reply_tools([("read_file", {"path": "src/app.py"}), ("run", {"command": "ls"})])
    reply = await reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS)
    assert reply.tool_calls == (
        ToolCall("read_file", {"path": "src/app.py"}),
        ToolCall("run", {"command": "ls"}),
    )
    ollama.reply_text("done")
    history = [
        *ASK,
        ChatMessage("assistant", reply.content, reply.tool_calls),
        ChatMessage("tool", "print('hi')\n", tool_name="read_file"),
        ChatMessage("tool", "app.py\n", tool_name="run"),
    ]
    assert (await reasoner.chat("qwen2.5-coder:7b", history, TOOLS)).content == "done"
    sent = ollama.chats[1]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "read_file", "arguments": {"path": "src/app.py"}}},
            {"function": {"name": "run", "arguments": {"command": "ls"}}},
        ],
    }
    assert sent[3:] == [
        {"role": "tool", "content": "print('hi')\n", "tool_name": "read_file"},
        {"role": "tool", "content": "app.py\n", "tool_name": "run"},
    ]


async def test_ollama_bad_arguments_are_raw_text(ollama: OllamaStandin) -> None:
    reasoner = OllamaReasoner(ollama.url, timeout_s=5)
    ollama.reply_tools(
        [("read_file", "{path: src/app.py"), ("run", '["ls"]'), ("run", '{"command": "ls"}')]
    )
    reply = await reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS)
    assert reply.tool_calls == (
        ToolCall("read_file", "{path: src/app.py"),
        ToolCall("run", '["ls"]'),
        ToolCall("run", {"command": "ls"}),  # an object sent as JSON text is still read
    )
    # Sent back to Ollama, which wants an object, botched arguments go as {}.
    ollama.reply_text("sorry")
    history = [*ASK, ChatMessage("assistant", "", reply.tool_calls[:1])]
    await reasoner.chat("qwen2.5-coder:7b", history, TOOLS)
    sent = ollama.chats[1]["messages"][2]["tool_calls"]
    assert sent == [{"function": {"name": "read_file", "arguments": {}}}]


async def test_ollama_error_first_line(ollama: OllamaStandin) -> None:
    ollama.reply_error("model requires more system memory (9.1 GiB) than is available")
    with pytest.raises(ReasoningError) as error:
        await OllamaReasoner(ollama.url, timeout_s=5).chat("qwen2.5-coder:7b", ASK, TOOLS)
    text = one_line(error)
    assert ollama.url + "/api/chat" in text
    assert "more system memory" in text


async def test_ollama_error_mid_stream(ollama: OllamaStandin) -> None:
    ollama.reply_mid_error("Let me", "an error was encountered while running the model")
    with pytest.raises(ReasoningError, match="error was encountered while running the model"):
        await OllamaReasoner(ollama.url, timeout_s=5).chat("qwen2.5-coder:7b", ASK, TOOLS)


@pytest.mark.parametrize(("status", "message"), [(404, "model 'nope' not found"), (500, "boom")])
async def test_ollama_http_errors(ollama: OllamaStandin, status: int, message: str) -> None:
    ollama.reply_http_error(status, message)
    with pytest.raises(ReasoningError) as error:
        await OllamaReasoner(ollama.url, timeout_s=5).chat("nope", ASK, TOOLS)
    text = one_line(error)
    assert f"HTTP {status}" in text and message in text and ollama.url in text
    assert (error.value.retry_after_s is not None) == (status >= 500)


async def test_ollama_show_404_is_an_error(ollama: OllamaStandin) -> None:
    ollama.show_missing.add("tiny:latest")  # listed by /api/tags, gone by /api/show
    with pytest.raises(ReasoningError) as error:
        await OllamaReasoner(ollama.url, timeout_s=5).models()
    text = one_line(error)
    assert "/api/show" in text and "HTTP 404" in text and "model 'tiny:latest' not found" in text


async def test_ollama_garbage_line(ollama: OllamaStandin) -> None:
    ollama.reply_garbage()
    with pytest.raises(ReasoningError, match="not JSON"):
        await OllamaReasoner(ollama.url, timeout_s=5).chat("qwen2.5-coder:7b", ASK, TOOLS)


async def test_ollama_stream_without_done(ollama: OllamaStandin) -> None:
    ollama.reply_no_done()
    with pytest.raises(ReasoningError, match="before its done line"):
        await OllamaReasoner(ollama.url, timeout_s=5).chat("qwen2.5-coder:7b", ASK, TOOLS)


async def test_ollama_oversized_stream_is_cut(ollama: OllamaStandin) -> None:
    ollama.reply_huge(3 * 1024 * 1024)
    reasoner = OllamaReasoner(ollama.url, timeout_s=5, max_response_bytes=1024 * 1024)
    with pytest.raises(ReasoningError, match="larger than 1048576 bytes"):
        await reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS)


async def test_ollama_stalled_stream_times_out(ollama: OllamaStandin) -> None:
    ollama.reply_hang(30)
    started = time.monotonic()
    with pytest.raises(ReasoningError, match="stalled") as error:
        await OllamaReasoner(ollama.url, timeout_s=0.3).chat("qwen2.5-coder:7b", ASK, TOOLS)
    assert time.monotonic() - started < 5
    assert error.value.retry_after_s is not None


async def test_ollama_turn_timeout(ollama: OllamaStandin) -> None:
    line = b'{"model": "m", "message": {"role": "assistant", "content": "."}, "done": false}\n'
    ollama.reply_raw([line, 0.1] * 30)
    reasoner = OllamaReasoner(ollama.url, timeout_s=5, turn_timeout_s=0.35)
    with pytest.raises(ReasoningError, match=r"longer than 0\.35 s"):
        await reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS)


async def test_ollama_cancelled_turn_ends_at_once(ollama: OllamaStandin) -> None:
    ollama.reply_hang(30)
    reasoner = OllamaReasoner(ollama.url, timeout_s=30)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS), 0.3)
    assert time.monotonic() - started < 3
    ollama.reply_text("next")  # the reasoner still works after a cancelled turn
    assert (await reasoner.chat("qwen2.5-coder:7b", ASK, TOOLS)).content == "next"


async def test_ollama_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ReasoningError, match="connection refused") as error:
        await OllamaReasoner(url, timeout_s=2).models()
    assert url in one_line(error)


# OpenAI-compatible


async def test_openai_models(openai: OpenAIStandin) -> None:
    reasoner = OpenAIReasoner(openai.url + "/v1", api_key=KEY, timeout_s=5)
    models = await reasoner.models()
    assert [(m.name, m.context_length) for m in models] == [("local-model", None)]
    assert openai.requests[0].path == "/v1/models"
    assert openai.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert reasoner.name == "openai"


async def test_openai_text_turn(openai: OpenAIStandin) -> None:
    openai.reply_text("Looking at the code now.", prompt_tokens=50, completion_tokens=6)
    reply = await OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5).chat(
        "local-model", ASK, TOOLS, max_tokens=100
    )
    assert reply.content == "Looking at the code now."
    assert reply.tool_calls == ()
    assert (reply.model, reply.prompt_tokens, reply.completion_tokens) == ("local-model", 50, 6)
    sent = openai.chats[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == 100
    assert sent["tools"][1] == {
        "type": "function",
        "function": {
            "name": "run",
            "description": "Run a shell command in the sandbox.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }


async def test_openai_parallel_tool_calls_in_fragments(openai: OpenAIStandin) -> None:
    reasoner = OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5)
    openai.reply_tools(
        [
            ("read_file", json.dumps({"path": "src/very/long/path/to/module.py"})),
            ("run", json.dumps({"command": "python -m pytest -q tests/"})),
        ],
        fragment=5,
    )
    reply = await reasoner.chat("local-model", ASK, TOOLS)
    assert reply.tool_calls == (
        ToolCall("read_file", {"path": "src/very/long/path/to/module.py"}, "call_0abc"),
        ToolCall("run", {"command": "python -m pytest -q tests/"}, "call_1abc"),
    )
    assert (reply.prompt_tokens, reply.completion_tokens) == (30, 12)

    openai.reply_text("ok")
    history = [
        *ASK,
        ChatMessage("assistant", "", reply.tool_calls),
        ChatMessage("tool", "contents", tool_call_id="call_0abc", tool_name="read_file"),
        ChatMessage("tool", "3 passed", tool_call_id="call_1abc", tool_name="run"),
    ]
    await reasoner.chat("local-model", history, TOOLS)
    sent = openai.chats[1]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0abc",
                "type": "function",
                "function": {
                    "name": "read_file",
                    "arguments": '{"path": "src/very/long/path/to/module.py"}',
                },
            },
            {
                "id": "call_1abc",
                "type": "function",
                "function": {
                    "name": "run",
                    "arguments": '{"command": "python -m pytest -q tests/"}',
                },
            },
        ],
    }
    assert sent[3:] == [
        {"role": "tool", "content": "contents", "tool_call_id": "call_0abc"},
        {"role": "tool", "content": "3 passed", "tool_call_id": "call_1abc"},
    ]


async def test_openai_calls_without_ids_get_matching_ids(openai: OpenAIStandin) -> None:
    openai.reply_text("ok")
    history = [
        *ASK,
        ChatMessage("assistant", "", (ToolCall("run", {"command": "ls"}),)),
        ChatMessage("tool", "a.py", tool_name="run"),
    ]
    await OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5).chat("local-model", history, ())
    sent = openai.chats[0]
    assert "tools" not in sent
    call_id = sent["messages"][2]["tool_calls"][0]["id"]
    assert sent["messages"][3]["tool_call_id"] == call_id


async def test_openai_bad_arguments_are_raw_text(openai: OpenAIStandin) -> None:
    openai.reply_tools([("run", '{"command": "ls'), ("read_file", "[1, 2]"), ("run", "")])
    reply = await OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5).chat(
        "local-model", ASK, TOOLS
    )
    assert [c.arguments for c in reply.tool_calls] == ['{"command": "ls', "[1, 2]", {}]


async def test_openai_error_first_and_mid_stream(openai: OpenAIStandin) -> None:
    reasoner = OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5)
    openai.reply_error("This model's maximum context length is 4096 tokens")
    with pytest.raises(ReasoningError, match="maximum context length") as error:
        await reasoner.chat("local-model", ASK, TOOLS)
    assert openai.url + "/v1/chat/completions" in one_line(error)
    openai.reply_mid_error("Partial ans", "CUDA out of memory")
    with pytest.raises(ReasoningError, match="CUDA out of memory"):
        await reasoner.chat("local-model", ASK, TOOLS)


@pytest.mark.parametrize("status", [404, 500, 429])
async def test_openai_http_errors(openai: OpenAIStandin, status: int) -> None:
    openai.reply_http_error(
        status, f"failure {status}", {"Retry-After": "7"} if status == 429 else None
    )
    with pytest.raises(ReasoningError) as error:
        await OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5).chat("m", ASK, TOOLS)
    text = one_line(error)
    assert f"HTTP {status}" in text and f"failure {status}" in text
    expected = {404: None, 500: 1.0, 429: 7.0}[status]
    assert error.value.retry_after_s == expected


async def test_openai_key_never_shown(openai: OpenAIStandin) -> None:
    reasoner = OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5)
    assert KEY not in repr(reasoner) and KEY not in str(vars(reasoner))
    wrong = OpenAIReasoner(openai.url, api_key=KEY + "-wrong", timeout_s=5)
    with pytest.raises(ReasoningError) as error:
        await wrong.models()
    text = one_line(error)
    assert "HTTP 401" in text and "Incorrect API key" in text
    assert KEY not in text and KEY not in repr(error.value)
    assert KEY not in repr(wrong)


async def test_openai_password_in_url_never_shown(openai: OpenAIStandin) -> None:
    url = openai.url.replace("http://", "http://user:hunter2pass@")
    reasoner = OpenAIReasoner(url, timeout_s=5)
    assert "hunter2pass" not in repr(reasoner)
    with pytest.raises(ReasoningError) as error:
        await reasoner.models()  # 401: Basic auth is not the stand-in's key
    assert "hunter2pass" not in str(error.value)


async def test_openai_garbage_and_early_end(openai: OpenAIStandin) -> None:
    reasoner = OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5)
    openai.reply_garbage()
    with pytest.raises(ReasoningError, match="not JSON"):
        await reasoner.chat("local-model", ASK, TOOLS)
    openai.reply_raw([b"<html>bad gateway</html>\n"])
    with pytest.raises(ReasoningError, match="not a server-sent event"):
        await reasoner.chat("local-model", ASK, TOOLS)
    openai.reply_no_done()
    with pytest.raises(ReasoningError, match=r"before data: \[DONE\]"):
        await reasoner.chat("local-model", ASK, TOOLS)


async def test_openai_oversized_and_stalled(openai: OpenAIStandin) -> None:
    openai.reply_huge(2 * 1024 * 1024)
    small = OpenAIReasoner(openai.url, api_key=KEY, timeout_s=5, max_response_bytes=512 * 1024)
    with pytest.raises(ReasoningError, match="larger than"):
        await small.chat("local-model", ASK, TOOLS)
    openai.reply_hang(30)
    started = time.monotonic()
    with pytest.raises(ReasoningError, match="stalled"):
        await OpenAIReasoner(openai.url, api_key=KEY, timeout_s=0.3).chat("m", ASK, TOOLS)
    assert time.monotonic() - started < 5


async def test_openai_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ReasoningError, match="connection refused") as error:
        await OpenAIReasoner(url, api_key=KEY, timeout_s=2).chat("m", ASK, TOOLS)
    assert KEY not in str(error.value)


# replay


async def test_replay_returns_turns_in_order_then_errors() -> None:
    turns = [
        Reply("Reading.", (ToolCall("read_file", {"path": "a.py"}),), "replay"),
        Reply("", (ToolCall("finish", {"summary": "done"}, "c1"),), "replay"),
    ]
    reasoner = ReplayReasoner(turns)
    assert [m.name for m in await reasoner.models()] == ["replay"]
    assert await reasoner.chat("any", ASK, TOOLS) == turns[0]
    assert await reasoner.chat("any", ASK, TOOLS) == turns[1]
    with pytest.raises(ReasoningError, match="the recording has no more turns"):
        await reasoner.chat("any", ASK, TOOLS)
    assert len(reasoner.requests) == 3


async def test_replay_file_round_trip(tmp_path: Path) -> None:
    turns = [
        Reply("x", (ToolCall("run", "{bad"), ToolCall("run", {"command": "ls"}, "id1")), "m", 3, 4),
        Reply("bye", (), "replay"),
    ]
    path = tmp_path / "trajectory.json"
    dump_turns(turns, path)
    assert load_turns(path) == turns
    reasoner = ReplayReasoner.from_file(path)
    assert (await reasoner.chat("m", ASK, ())).tool_calls[0].arguments == "{bad"

    path.write_text(json.dumps([{"content": "hi"}, {"tool_calls": [{"name": "finish"}]}]))
    loaded = load_turns(path)
    assert loaded[0] == Reply("hi", (), "replay")
    assert loaded[1].tool_calls == (ToolCall("finish", {}),)

    path.write_text(json.dumps({"turns": [{"tool_calls": [{"arguments": {}}]}]}))
    with pytest.raises(ReasoningError, match="needs a name"):
        load_turns(path)
