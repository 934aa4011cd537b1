#!/usr/bin/env bash
# Install what BZZZ's tests need from the OS, on a fresh Debian machine: PostgreSQL's
# server binaries (the tests start their own cluster on 127.0.0.1), Python's venv, and
# iproute2 (the mDNS test makes two network namespaces joined by a veth pair), and
# Node.js with npm, to install GitHub's OpenAPI description (npm's @octokit/openapi,
# pinned in fixtures/github-openapi) that the GitHub stand-in is checked against, and
# bubblewrap (the sandbox a model's commands run in), git and ssh-keygen (a task's
# worktree and its signed commits), tmux (the portal's test in a real terminal), Chromium
# (the dashboard's test), curl (the demo) and systemd (`systemd-analyze verify` of the unit).
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v git >/dev/null 2>&1 || need+=(git)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)  # git's SSH commit signing
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # the unit is verified
[ -x /usr/sbin/sshd ] || need+=(openssh-server)  # bzzz deploy's tests log in to a real sshd
command -v curl >/dev/null 2>&1 || need+=(curl)  # the demo reads the health endpoints
# The dashboard's test renders it in headless Chromium; fonts make its screenshot readable.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]}; install them (e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# GitHub's OpenAPI description, at the version package-lock.json pins.
openapi="$(cd "$(dirname "$0")/.." && pwd)/fixtures/github-openapi"
if [ ! -d "$openapi/node_modules/@octokit/openapi" ]; then
  echo "installing GitHub's OpenAPI description in $openapi"
  (cd "$openapi" && npm ci --no-audit --no-fund --loglevel=error)
fi
