"""The tool contract (issue 20): exactly the tools a model may call while it works a
task, their JSON arguments, and the checks every call passes before anything runs.

    read_file {path}            list_files {path}         run {command}
    write_file {path, content}  ask {question}            finish {summary}

Paths are relative to the task's worktree; anything that would leave it (absolute
paths, ``..`` above the root, NUL bytes) is refused. A call that breaks the contract
(an unknown tool, arguments that are not a JSON object, a missing or extra argument, a
wrong type, text past its limit) is answered with an error message the model can read
and act on; `check_call` never raises. Whether a path escapes through a symbolic link is
the adapter's check, on the real file system.

Every call is recorded before it runs (``exec.step``) and its outcome after
(``exec.result``), both with the fencing token of the hold: `step_body`, `result_body`.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bzzz.domain.claims import Token
from bzzz.domain.execution import ToolCall, ToolSpec

STARTED = "exec.started"  # {task, term, grant, backend, model, sandbox, branch, base}
STEP = "exec.step"
RESULT = "exec.result"
ENDED = "exec.ended"  # {task, term, grant, outcome, why, spent, commit, branch, link}
KINDS = (STARTED, STEP, RESULT, ENDED)
MAX_PATH = 1024
MAX_CONTENT = 512 * 1024  # bytes a write_file may carry
MAX_COMMAND = 8192
MAX_QUESTION = 4096
MAX_SUMMARY = 4096
MAX_RECORDED = 4096  # characters of arguments or output kept in an entry
MAX_OUTPUT_TO_MODEL = 16 * 1024  # characters of a tool's output the model is shown


def _text_arg(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _spec(name: str, description: str, **args: str) -> ToolSpec:
    return ToolSpec(
        name,
        description,
        {
            "type": "object",
            "properties": {key: _text_arg(text) for key, text in args.items()},
            "required": list(args),
            "additionalProperties": False,
        },
    )


TOOLS: tuple[ToolSpec, ...] = (
    _spec("read_file", "Read a file of the repository.", path="Path relative to the repository."),
    _spec(
        "write_file",
        "Create or replace a file of the repository with the given content.",
        path="Path relative to the repository.",
        content="The whole new content of the file.",
    ),
    _spec(
        "list_files",
        "List the files and folders under a folder of the repository.",
        path="Folder relative to the repository; '.' for its root.",
    ),
    _spec(
        "run",
        "Run a shell command in the repository's folder, in a sandbox without network.",
        command="The command line, e.g. 'python -m pytest -q'.",
    ),
    _spec(
        "ask",
        "Ask the other agents and the humans a question about the task; waits for an answer.",
        question="The question.",
    ),
    _spec(
        "finish",
        "Say the task is done; the changes are committed and proposed for review.",
        summary="What was done, in a sentence or two.",
    ),
)
TOOL_NAMES = tuple(t.name for t in TOOLS)


@dataclass(frozen=True, slots=True)
class Action:
    """A checked call: the tool and its arguments, paths normalised."""

    tool: str
    arguments: Mapping[str, str]

    @property
    def path(self) -> str:
        return self.arguments.get("path", ".")


@dataclass(frozen=True, slots=True)
class ToolError:
    """What the model is told instead of running its call."""

    message: str


LIMITS = {
    "path": MAX_PATH,
    "content": MAX_CONTENT,
    "command": MAX_COMMAND,
    "question": MAX_QUESTION,
    "summary": MAX_SUMMARY,
}


def worktree_path(path: str) -> str | ToolError:
    """`path` relative to the worktree's root, normalised; a ToolError when it would
    leave the worktree."""
    if "\x00" in path:
        return ToolError("a path cannot hold a NUL character")
    slashed = path.replace("\\", "/")  # a Windows-minded model's separators
    if slashed.startswith(("/", "~")) or (len(slashed) > 1 and slashed[1] == ":"):
        return ToolError(f"{path[:200]!r}: paths are relative to the repository's root")
    normal = posixpath.normpath(slashed) if slashed else "."
    if normal == ".." or normal.startswith("../"):
        return ToolError(f"{path[:200]!r} is outside the repository")
    return normal


def check_call(call: ToolCall) -> Action | ToolError:
    """The call as an action, or what is wrong with it in words the model can use."""
    if call.name not in TOOL_NAMES:
        return ToolError(
            f"there is no tool {call.name[:100]!r}; the tools: {', '.join(TOOL_NAMES)}"
        )
    spec = TOOLS[TOOL_NAMES.index(call.name)]
    if not isinstance(call.arguments, Mapping):
        return ToolError(f"{call.name}: the arguments must be a JSON object")
    wanted = list(spec.parameters["required"])
    extra = sorted(str(k) for k in call.arguments if k not in wanted)
    if extra:
        return ToolError(
            f"{call.name}: unknown argument {extra[0]!r}; it takes {', '.join(wanted)}"
        )
    checked: dict[str, str] = {}
    for key in wanted:
        value = call.arguments.get(key)
        if not isinstance(value, str):
            return ToolError(f"{call.name}: {key} must be text")
        size = len(value.encode("utf-8", "replace")) if key == "content" else len(value)
        if size > LIMITS[key]:
            return ToolError(f"{call.name}: {key} is longer than {LIMITS[key]}")
        if key != "content" and not value.strip():
            return ToolError(f"{call.name}: {key} is empty")
        checked[key] = value
    if "path" in checked:
        where = worktree_path(checked["path"])
        if isinstance(where, ToolError):
            return ToolError(f"{call.name}: {where.message}")
        checked["path"] = where
    return Action(call.name, checked)


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def step_body(
    task: str, token: Token, n: int, call: ToolCall, sandbox: str | None = None
) -> dict[str, Any]:
    """`exec.step`: the call, before it runs (the arguments cut, a long `content` by its
    digest), and the sandbox a `run` goes to."""
    arguments: Any = call.arguments
    if isinstance(arguments, Mapping):
        arguments = {str(k): _recorded(str(k), v) for k, v in list(arguments.items())[:10]}
    else:
        arguments = cut(str(arguments), MAX_RECORDED)
    return {
        "task": task,
        "term": token[0],
        "grant": token[1],
        "n": n,
        "tool": call.name[:100],
        "call_id": call.id[:100] if call.id else None,
        "arguments": arguments,
        "sandbox": sandbox,
    }


def _recorded(key: str, value: object) -> object:
    """An argument as an entry keeps it: text cut; a file's content by its digest."""
    text = value if isinstance(value, str) else str(value)
    if key == "content":
        return {"sha256": digest(text.encode("utf-8", "replace")), "chars": len(text)}
    return cut(text, MAX_RECORDED)


def result_body(
    task: str,
    token: Token,
    n: int,
    ok: bool,
    output: str,
    *,
    exit_code: int | None = None,
    seconds: float = 0.0,
) -> dict[str, Any]:
    """`exec.result`: how a step ended, its output cut and digested whole."""
    return {
        "task": task,
        "term": token[0],
        "grant": token[1],
        "n": n,
        "ok": ok,
        "exit_code": exit_code,
        "seconds": round(seconds, 3),
        "output": cut(output, MAX_RECORDED),
        "output_sha256": digest(output.encode("utf-8", "replace")),
    }
