# syntax=docker/dockerfile:1
# BZZZ in a container: the agent (`bzzz agent`, the default) or a person's node for the
# portal (`bzzz hap --node-only`), as a user of its own (uid 10001), the node home in a
# volume at /var/lib/bzzz. See deploy/kubernetes/ for a cluster of agents.
#
#   docker build -t bzzz .
#   docker run -d --name bzzz-0 -v bzzz-0:/var/lib/bzzz -p 7420:7420 \
#     -e BZZZ_INIT_CLUSTER=demo bzzz
#
# A model's commands run in bubblewrap, which needs user namespaces and a /proc it may
# mount: container runtimes deny both by default (seccomp, masked /proc). A node with
# `reasoning` in its config needs `--security-opt seccomp=unconfined --security-opt
# systempaths=unconfined --security-opt apparmor=unconfined`; without it, none.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bzzz ./bzzz
RUN python -m venv /opt/bzzz \
    && /opt/bzzz/bin/pip install --no-cache-dir --no-compile . \
    && /opt/bzzz/bin/python -m compileall -q /opt/bzzz/lib

FROM python:3.11-slim-bookworm
# git and ssh-keygen: a task's worktree and its signed commits; bubblewrap: the sandbox
# of a model's commands; tini: a PID 1 that passes SIGTERM on and reaps git's children.
# Debian's versions of the day: bookworm's security updates are what is wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bubblewrap ca-certificates git openssh-client tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bzzz \
    && useradd --system --uid 10001 --gid bzzz --home-dir /var/lib/bzzz \
        --shell /usr/sbin/nologin bzzz \
    && install -d -o bzzz -g bzzz -m 0750 /var/lib/bzzz
COPY --from=build /opt/bzzz /opt/bzzz
COPY deploy/docker/entrypoint.sh /usr/local/bin/bzzz-entrypoint
ENV PATH=/opt/bzzz/bin:$PATH \
    BZZZ_HOME=/var/lib/bzzz/node \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/bzzz
VOLUME ["/var/lib/bzzz"]
# The mesh (SSH). mDNS does not cross container networks: peers come from config
# (BZZZ_MESH_PEERS) or from the members one seed names.
EXPOSE 7420
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 7420), 3)"]
ENTRYPOINT ["tini", "--", "bzzz-entrypoint"]
CMD ["agent", "--no-mdns"]
