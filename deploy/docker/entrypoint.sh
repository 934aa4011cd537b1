#!/bin/sh
# The container's entry point: make the node home on first start, then run `bzzz ARGS`.
#
# The home is $BZZZ_HOME (/var/lib/bzzz/node: a folder bzzz makes 0700 inside the
# volume mounted at /var/lib/bzzz). When it holds no node yet:
#   BZZZ_INIT_TOKEN=TOKEN   join a cluster with a token from `bzzz invite` on a member
#                           (or BZZZ_INIT_TOKEN_FILE: a file holding it, if it exists);
#   BZZZ_INIT_CLUSTER=NAME  found a new cluster of that name, only when this node's name
#                           is BZZZ_INIT_FOUNDER (or BZZZ_INIT_FOUNDER is unset);
#   BZZZ_INIT_NAME          the node's name (default: the host name, a pod's name);
#   BZZZ_INIT_LISTEN        HOST:PORT the mesh listens on (default 0.0.0.0:7420).
# (BZZZ_INIT_* are read only here; other BZZZ_* variables override config.yaml keys.)
set -eu

home="${BZZZ_HOME:-/var/lib/bzzz/node}"
name="${BZZZ_INIT_NAME:-$(hostname)}"
listen="${BZZZ_INIT_LISTEN:-0.0.0.0:7420}"

token="${BZZZ_INIT_TOKEN:-}"
if [ -z "$token" ] && [ -n "${BZZZ_INIT_TOKEN_FILE:-}" ] && [ -r "$BZZZ_INIT_TOKEN_FILE" ]; then
  token="$(tr -d ' \n\r\t' < "$BZZZ_INIT_TOKEN_FILE")"
fi

if [ ! -f "$home/config.yaml" ]; then
  if [ -n "$token" ]; then
    echo "bzzz-entrypoint: joining the cluster as $name"
    bzzz join --home "$home" --name "$name" --listen "$listen" "$token"
  elif [ -n "${BZZZ_INIT_CLUSTER:-}" ] \
      && { [ -z "${BZZZ_INIT_FOUNDER:-}" ] || [ "$name" = "$BZZZ_INIT_FOUNDER" ]; }; then
    echo "bzzz-entrypoint: founding the cluster $BZZZ_INIT_CLUSTER as $name"
    bzzz init --home "$home" --name "$name" --listen "$listen" --new-cluster "$BZZZ_INIT_CLUSTER"
  else
    echo "error: $home holds no node yet: set BZZZ_INIT_TOKEN to a token from \`bzzz invite\`" \
      "on a member (kubectl exec bzzz-agent-0 -- bzzz invite), or BZZZ_INIT_CLUSTER=NAME" \
      "on the founder, then start again" >&2
    exit 2
  fi
fi
exec bzzz "$@"
