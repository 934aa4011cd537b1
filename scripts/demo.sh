#!/usr/bin/env bash
# `make demo`: BZZZ's main job on embedded defaults, in a throwaway folder.
# Two nodes record a few hundred signed entries of several kinds; one imports the other's
# log; we show and audit them; then we damage the store as an attacker would and audit
# again. Then a cluster of three daemons: replication, the admin election, claims, tasks
# from a shared folder chosen by the agents, and HMMM: plans discussed before the work,
# an objection, a revision, an escalation posted to a webhook. Then execution: tasks on a
# team repository planned and worked by a model (recorded turns, and a real local model
# when installed) in bubblewrap, pushed as signed branches. Then two more members join
# and the admin key is split 3-of-5 and rebuilt in a recorded ceremony. Uses the real `bzzz`.
set -euo pipefail

BZZZ=${BZZZ:-bzzz}
PY=${PY:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d -t bzzz-demo-XXXXXX)
pids=()
model_pid=""
cleanup() {
  local status=$?
  for pid in "${pids[@]}" $model_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "the demo failed; its nodes, logs and repositories are kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
alpha="$work/alpha"
beta="$work/beta"

step() { printf '\n\033[1;33m== %s\033[0m\n' "$*"; }

step "Create two nodes (Ed25519 agent key, age identity, config.yaml, SQLite store)"
$BZZZ init --home "$alpha" --name alpha --role developer
$BZZZ init --home "$beta" --name beta --role reviewer
$BZZZ id --home "$alpha"

step "Record a few hundred entries of several kinds (atomic batches)"
$PY - "$work" <<'PYEOF'
import json, random, sys
random.seed(7)
kinds = ["task.created", "task.claim_requested", "hmmm.plan_proposed", "hmmm.objection",
         "task.progress", "decision.recorded"]
for name, n in (("alpha", 240), ("beta", 120)):
    with open(f"{sys.argv[1]}/{name}.jsonl", "w") as out:
        for i in range(n):
            kind = kinds[i % len(kinds)] if i else "task.created"
            out.write(json.dumps({"kind": kind, "data": {"task": f"#{i // 6 + 1}",
                      "by": name, "step": i, "note": random.choice(["ok", "needs tests", "lgtm"])}}) + "\n")
PYEOF
$BZZZ log append --home "$alpha" --batch "$work/alpha.jsonl"
$BZZZ log append --home "$beta" --batch "$work/beta.jsonl"
$BZZZ log append --home "$alpha" --kind task.progress --data '{"task": "#41", "percent": 80}'

step "Carry beta's log to alpha in a bundle (every entry verified on import)"
$BZZZ log export "$work/beta.bundle" --home "$beta"
$BZZZ log import "$work/beta.bundle" --home "$alpha"

step "Show the last entries, and the authors projection"
$BZZZ log show --home "$alpha" --limit 8
$BZZZ projections authors --home "$alpha"

step "Audit: fast (hash links + each head's signature), then --full (every signature)"
$BZZZ audit --home "$alpha"
$BZZZ audit --home "$alpha" --full
$BZZZ log export "$work/reference.bundle" --home "$alpha"

step "Change one byte of alpha's entry 150 in the database, as a bad disk or an attacker would"
agent=$($BZZZ id --home "$alpha" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["agent_id"])')
$PY - "$alpha/store.db" "$agent" 150 <<'PYEOF'
import sqlite3, sys, uuid
db, agent, seq = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
conn = sqlite3.connect(db)
stream = uuid.UUID(bytes=agent[:16]).bytes
raw = bytearray(conn.execute("SELECT state FROM bzzz_entries WHERE originator_id=? AND originator_version=?", (stream, seq)).fetchone()[0])
raw[len(raw) // 2] ^= 0x20
conn.execute("UPDATE bzzz_entries SET state=? WHERE originator_id=? AND originator_version=?", (bytes(raw), stream, seq))
conn.commit()
print(f"flipped one bit at byte {len(raw) // 2} of seq {seq}")
PYEOF
set +e
$BZZZ audit --home "$alpha"
echo "(audit exit code: $?)"
set -e

step "Delete alpha's last entry and fix up the recorded head: the store alone looks consistent..."
$PY - "$alpha/store.db" "$agent" <<'PYEOF'
import cbor2, hashlib, sqlite3, sys, uuid
db, agent = sys.argv[1], bytes.fromhex(sys.argv[2])
conn = sqlite3.connect(db)
stream = uuid.UUID(bytes=agent[:16]).bytes
last = conn.execute("SELECT max(originator_version) FROM bzzz_entries WHERE originator_id=?", (stream,)).fetchone()[0]
conn.execute("DELETE FROM bzzz_entries WHERE originator_id=? AND originator_version=?", (stream, last))
prev = conn.execute("SELECT state FROM bzzz_entries WHERE originator_id=? AND originator_version=?", (stream, last - 1)).fetchone()[0]
lamport = cbor2.loads(prev)[4]  # the entry's own lamport field
conn.execute("UPDATE bzzz_heads SET seq=?, hash=?, lamport=? WHERE author=?", (last - 1, hashlib.sha256(prev).digest(), lamport, agent))
conn.commit()
print(f"deleted seq {last}")
PYEOF
step "...but not against the bundle exported earlier"
set +e
$BZZZ audit --home "$alpha" --against "$work/reference.bundle"
echo "(audit exit code: $?)"
set -e

# ---------------------------------------------------------------------------------------
step "The mesh: found a cluster, and start its first daemon on 127.0.0.1"
read -r p1 p2 p3 < <($PY -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
start() {  # start NAME [args]: the agent runs in the background, its log in $work/NAME.log
  local name=$1; shift
  $BZZZ agent --home "$work/$name" --no-mdns "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
  $PY - "$work/$name" <<'PYEOF'
import sys, time
from pathlib import Path
from bzzz.agent.control import ask
for _ in range(300):
    if ask(Path(sys.argv[1]), {"op": "status"}):
        break
    time.sleep(0.1)
else:
    sys.exit(f"the agent in {sys.argv[1]} did not start")
PYEOF
}
converge() {  # wait until every running agent holds the same heads, then print them
  $PY - "$@" <<'PYEOF'
import sys, time
from pathlib import Path
from bzzz.agent.control import ask
homes = [Path(h) for h in sys.argv[1:]]
for _ in range(600):
    heads = [ask(h, {"op": "status"})["status"]["heads"] for h in homes]
    if all(h == heads[0] for h in heads):
        print(f"converged: {len(heads[0])} logs, {sum(heads[0].values())} entries on each of {len(homes)} nodes")
        break
    time.sleep(0.1)
else:
    sys.exit("the nodes did not converge")
PYEOF
}
$BZZZ init --home "$work/m1" --name m1 --new-cluster demo --listen "127.0.0.1:$p1"
start m1

step "Invite two nodes; each joins with its one-time token (SSH, keys checked against membership)"
token=$($BZZZ invite --home "$work/m1" --role developer --expires 10m 2>/dev/null)
echo "token: ${token:0:48}..."
$BZZZ join "$token" --home "$work/m2" --name m2 --listen "127.0.0.1:$p2"
token=$($BZZZ invite --home "$work/m1" --role reviewer --expires 10m 2>/dev/null)
$BZZZ join "$token" --home "$work/m3" --name m3 --listen "127.0.0.1:$p3"
start m2 --peer "127.0.0.1:$p3"
start m3
$BZZZ member list --home "$work/m1"

step "Each node records entries; the mesh replicates them everywhere"
for n in 1 2 3; do
  for i in 1 2 3 4 5; do
    $BZZZ log append --home "$work/m$n" --kind task.progress --data "{\"by\": \"m$n\", \"step\": $i}" >/dev/null
  done
done
converge "$work/m1" "$work/m2" "$work/m3"
$BZZZ status --home "$work/m1"

step "kill -9 m3, keep working without it, restart it: it catches up"
kill -9 "$pid_m3"
$BZZZ log append --home "$work/m1" --batch "$work/alpha.jsonl" >/dev/null
$BZZZ log append --home "$work/m2" --kind task.progress --data '{"by": "m2", "note": "while m3 was down"}' >/dev/null
converge "$work/m1" "$work/m2"
start m3
converge "$work/m1" "$work/m2" "$work/m3"
$BZZZ log show --home "$work/m3" --limit 3

step "Every node's store audits clean"
for n in 1 2 3; do $BZZZ audit --home "$work/m$n"; done

step "A forger founds its own cluster named demo: its logs are refused, membership unchanged"
$BZZZ init --home "$work/forger" --name forger --new-cluster demo >/dev/null
$BZZZ log export "$work/forger.bundle" --home "$work/forger"
set +e
$BZZZ log import "$work/forger.bundle" --home "$work/m1"
echo "(import exit code: $?)"
set -e
$BZZZ member list --home "$work/m1"

step "The admin election: a Raft leader among the voters, proven by vote entries in the logs"
leader_of() {  # leader_of HOME [OTHER_THAN]: wait until HOME follows a proven leader, print its id
  if $PY - "$@" <<'PYEOF'
import sys
from pathlib import Path
from bzzz.agent.control import ask
other = sys.argv[2] if len(sys.argv) > 2 else None
answer = ask(Path(sys.argv[1]), {"op": "election_wait", "other_than": other, "timeout": 60}, timeout=70)
if not answer or not answer.get("leader"):
    sys.exit("no proven leader")
print(answer["leader"])
PYEOF
  then
    return 0
  fi
  for log in "$work"/m*.log; do echo "== last lines of $log" && tail -n 15 "$log"; done >&2
  return 1
}
leader=$(leader_of "$work/m2")
$BZZZ election status --home "$work/m2"

step "Agents m2 and m3 race for task #42: the admin grants it once, with a fencing token"
$BZZZ claim request '#42' --home "$work/m2" &
$BZZZ claim request '#42' --home "$work/m3" || true
wait %% 2>/dev/null || true
$BZZZ claim request '#43' --home "$work/m3" --needs rust || true
$BZZZ claim list --home "$work/m1"

step "kill -9 the admin: the others elect a new one, which re-issues the live claim in its term"
for n in 1 2 3; do
  if [ "$($BZZZ id --home "$work/m$n" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["agent_id"])')" = "$leader" ]; then
    victim=$n
  fi
done
eval "kill -9 \$pid_m$victim"
survivor=$([ "$victim" = 1 ] && echo 2 || echo 1)
leader_of "$work/m$survivor" "$leader" >/dev/null
sleep 0.5
$BZZZ election status --home "$work/m$survivor"
$BZZZ claim list --home "$work/m$survivor"
start "m$victim"
leader_of "$work/m$victim" >/dev/null
echo "m$victim is back and follows the new admin"

step "Tasks: every node gets one shared task folder; m2 and m3 choose tasks themselves"
for n in 1 2 3; do eval "kill -TERM \$pid_m$n"; done
wait 2>/dev/null || true
pids=()
mkdir -p "$work/tasks"
cp -r "$root/fixtures/demo/recordings" "$work/recordings"
model_url="" model_name=""
if curl -fsS --max-time 1 http://127.0.0.1:11434/api/tags >/dev/null 2>&1; then
  model_url=http://127.0.0.1:11434  # a real Ollama server answers here: use it
  model_name=$(curl -fsS http://127.0.0.1:11434/api/tags | $PY -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["name"])')
elif [ -f "$root/fixtures/local-model/node_modules/.package-lock.json" ]; then
  # SmolLM2-135M from PyPI, run by node-llama-cpp behind Ollama's API (scripts/install-local-model.sh)
  (cd "$root" && exec $PY -m tests.support.local_model) >"$work/model.json" 2>"$work/model.log" &
  model_pid=$!
  for _ in $(seq 900); do [ -s "$work/model.json" ] && break; sleep 0.1; done
  if [ -s "$work/model.json" ]; then
    read -r model_url model_name < <($PY -c 'import json,sys; d = json.load(open(sys.argv[1])); print(d["url"], d["model"])' "$work/model.json")
  else
    echo "the local model did not start: $(tail -n 3 "$work/model.log")"
  fi
fi
echo "models: recorded turns (replay)${model_url:+, and $model_name at $model_url for trivial tasks}"
hook_port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
http_port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ucxi_port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for n in 1 2 3; do
  $PY - "$work/m$n/config.yaml" "$work/tasks" "$n" "$hook_port" "$model_url" "$model_name" "$http_port" "$ucxi_port" <<'PYEOF'
import sys, yaml
path, folder, n, hook, model_url, model_name, http_port, ucxi_port = sys.argv[1:9]
data = yaml.safe_load(open(path))
if n == "1":  # m1 serves /healthz, /readyz, /metrics and the dashboard on 127.0.0.1
    data["http"] = {"listen": f"127.0.0.1:{http_port}"}
if n == "3":  # m3 serves UCXI, the HTTP API of shared context, on 127.0.0.1
    data["ucxi"] = {"listen": f"127.0.0.1:{ucxi_port}"}
data["tasks"] = {"poll_s": 2, "sources": [{"type": "local", "path": folder, "name": "team"}]}
data["hmmm"] = {"objection_window_s": 4,
                "escalation": {"webhooks": [{"url": f"http://127.0.0.1:{hook}/hook"}]}}
if n != "1":
    data.setdefault("agent", {}).update({"auto_claim": True, "max_tasks": 4})
    # The model that plans and works tasks that name a repository: recorded turns
    # (replay), and a real local model for tasks of type trivial when one answers.
    data["reasoning"] = {"backend": "replay", "recordings": f"{folder}/../recordings",
                         "caps": {"calls": 12, "wall_s": 300}}
    if model_url:
        data["reasoning"]["task_types"] = {"trivial": {"backend": "ollama", "url": model_url,
                                                       "model": model_name, "prompt": "compact"}}
    data["sandbox"] = {"backend": "bwrap", "limits": {"wall_s": 60}}
yaml.safe_dump(data, open(path, "w"), sort_keys=False)
PYEOF
done
grep -A4 '^tasks:' "$work/m2/config.yaml"
start m1
start m2 --peer "127.0.0.1:$p1"
start m3 --peer "127.0.0.1:$p1"
leader_of "$work/m1" >/dev/null
$BZZZ task add --home "$work/m1" --title "Fix the login timeout" --priority 0 --type bug \
  --body "Users are logged out after 5 minutes instead of 30."
$BZZZ task add --home "$work/m1" --title "Add a health endpoint" --priority 1
$BZZZ task add --home "$work/m1" --title "Document the config keys" --type docs
$BZZZ task add --home "$work/m1" --title "Port the CLI to Go" --needs golang
$BZZZ task add --home "$work/m1" --title "Release notes" --depends-on add-a-health-endpoint
printf -- '---\ntitle: [unclosed\n---\n' > "$work/tasks/broken.md"
$BZZZ task sync --home "$work/m3"
board() {  # board N HOMES...: wait until every node shows the same board, N or more held
  $PY - "$@" <<'PYEOF'
import sys, time
from pathlib import Path
from bzzz.agent.control import ask
want, homes = int(sys.argv[1]), [Path(h) for h in sys.argv[2:]]
for _ in range(600):
    boards = [ask(h, {"op": "tasks"}, timeout=10)["tasks"] for h in homes]
    held = sum(1 for t in boards[0] if t["holder"])
    if all(b == boards[0] for b in boards) and held >= want:
        print(f"converged: the same board of {len(boards[0])} tasks on {len(homes)} nodes, {held} held")
        break
    time.sleep(0.1)
else:
    sys.exit("the boards did not converge")
PYEOF
}
board 2 "$work/m1" "$work/m2" "$work/m3"
$BZZZ task list --home "$work/m3"

step "m2 reports the phases of one of its tasks and marks it done, on every node's board"
mine=$($BZZZ task list --home "$work/m2" --json | $PY -c '
import json, sys
me = sys.argv[1]
print(next(t["id"] for t in json.load(sys.stdin)["tasks"] if t["holder"] == me))' \
  "$($BZZZ id --home "$work/m2" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["agent_id"])')")
$BZZZ task progress "$mine" --phase planning --home "$work/m2"
$BZZZ task progress "$mine" --phase working --home "$work/m2"
$BZZZ task done "$mine" --result "timeout read from config; test added" --link https://example.org/pr/1 --home "$work/m2"
sleep 2
$BZZZ task list --home "$work/m1"
$BZZZ task show "$mine" --home "$work/m3"

step "HMMM: one holder plans its task; a second plan overlaps it; the rule reviewers object"
read -r t3 h3 t2 h2 < <($BZZZ task list --home "$work/m1" --json | $PY -c '
import json, sys
held = [t for t in json.load(sys.stdin)["tasks"] if t["holder"] and t["state"] != "done"]
print(held[0]["id"], held[0]["holder_name"], held[1]["id"], held[1]["holder_name"])')
thread_state() {  # thread_state HOME THREAD STATE: wait until the thread is in STATE
  $PY - "$@" <<'PYEOF'
import sys, time
from pathlib import Path
from bzzz.agent.control import ask
for _ in range(300):
    answer = ask(Path(sys.argv[1]), {"op": "thread", "thread": sys.argv[2]}, timeout=10)
    if answer and answer.get("ok") and answer["thread"]["state"] == sys.argv[3]:
        break
    time.sleep(0.1)
else:
    sys.exit(f"thread {sys.argv[2]} did not reach {sys.argv[3]}")
PYEOF
}
echo "$h3 plans $t3:"
$BZZZ hmmm plan "$t3" --text "Change the config loader and document it" \
  --files docs/config.md --files bzzz/home/config.py --home "$work/$h3"
thread_state "$work/m1" "$t3" resolved
echo "$h2 plans $t2, touching bzzz/home/config.py too:"
$BZZZ hmmm plan "$t2" --text "Add a module and a config key for it" \
  --files bzzz/feature.py --files bzzz/home/config.py --home "$work/$h2"
thread_state "$work/m1" "$t2" objected
$BZZZ hmmm show "$t2" --home "$work/m1"

step "The holder revises its plan to leave the shared file out; m1 approves; the window passes"
$BZZZ hmmm plan "$t2" --text "Add the module; read the existing keys, add none" \
  --files bzzz/feature.py --home "$work/$h2"
$BZZZ hmmm approve "$t2" --home "$work/m1"
thread_state "$work/m1" "$t2" resolved
$BZZZ hmmm threads --home "$work/m3"
$BZZZ task list --home "$work/m1" --state working

step "A blocking objection escalates; the admin posts it to a webhook (a local receiver)"
$PY - "$hook_port" "$work/hook.json" >"$work/hook.log" 2>&1 <<'PYEOF' &
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, out = int(sys.argv[1]), sys.argv[2]
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", port), Hook).serve_forever()
PYEOF
pids+=($!)
hook_pid=$!
$BZZZ task add --home "$work/m1" --title "Rotate the signing keys" --priority 0 >/dev/null
$BZZZ task sync --home "$work/m1" >/dev/null
t4=""
for _ in $(seq 150); do
  t4=$($BZZZ task list --home "$work/m1" --json | $PY -c '
import json, sys
print(next((t["id"] for t in json.load(sys.stdin)["tasks"] if t["id"].endswith("rotate-the-signing-keys") and t["holder"]), ""))')
  [ -n "$t4" ] && break
  sleep 0.2
done
holder=$($BZZZ task show "$t4" --home "$work/m1" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["holder_name"])')
other=$([ "$holder" = m2 ] && echo m3 || echo m2)
echo "$holder took $t4 by itself"
$BZZZ hmmm plan "$t4" --text "Rotate every agent key at once" --files keys/ --home "$work/$holder"
$BZZZ hmmm object "$t4" --severity blocking --reason "all agents offline at once" \
  --resolve "rotate one agent at a time" --home "$work/$other"
thread_state "$work/m1" "$t4" escalated
for _ in $(seq 150); do [ -s "$work/hook.json" ] && break; sleep 0.2; done
$PY - "$work/hook.json" <<'PYEOF'
import json, sys
e = json.loads(open(sys.argv[1]).readline())
print(f"webhook received {e['event']} for {e['task']}: {e['reason']} "
      f"({len(e['transcript'])} messages; idempotency key {e['escalation'][:12]})")
PYEOF
$BZZZ hmmm resolve "$t4" --why "rotate one agent at a time, as $other says" --home "$work/m1"
thread_state "$work/m1" "$t4" resolved
$BZZZ hmmm transcript "$t4" --verify --home "$work/m1"
kill "$hook_pid" 2>/dev/null || true  # the receiver's work is done

step "Execution: a team repository; m1 guards its bzzz/* branches with a pre-receive hook"
repo="$work/greeter.git"
cp -r "$root/fixtures/demo/greeter" "$work/greeter-seed"
git -C "$work/greeter-seed" init -q -b main
git -C "$work/greeter-seed" add .
git -C "$work/greeter-seed" -c user.name=demo -c user.email=demo@example.org commit -qm "greeter"
git clone -q --bare "$work/greeter-seed" "$repo"
$BZZZ repo protect "$repo" --home "$work/m1"

step "The agents take tasks on it: a model plans (HMMM), works in bubblewrap, pushes signed"
# The tasks above are people's (no repository): their holders finish those they work on.
$BZZZ task list --home "$work/m1" --json | $PY -c '
import json, sys
for t in json.load(sys.stdin)["tasks"]:
    if t["holder"] and not t["repo"] and t["state"] == "working":
        print(t["id"], t["holder_name"])' | while read -r id who; do
  $BZZZ task done "$id" --result "done by hand" --home "$work/$who" >/dev/null
done
$BZZZ task add --home "$work/m1" --title "Fix the greeting typo" --type bug --priority 0 \
  --repo "$repo" --body "greet() says 'Helo'; the test expects 'Hello'."
$BZZZ task add --home "$work/m1" --title "Add a farewell function" --type feature \
  --repo "$repo" --body "farewell(name) returns 'Goodbye, NAME.'; in its own module, with a test."
if [ -n "$model_url" ]; then
  $BZZZ task add --home "$work/m1" --title "Write a notes file" --type trivial --priority 0 \
    --repo "$repo" --body "Create a file NOTES.md containing the word hello. Use the write_file tool."
fi
$BZZZ task sync --home "$work/m1" >/dev/null
$PY - "$work/m1" "$work" <<'PYEOF'
import sys, time
from pathlib import Path
from bzzz.agent.control import ask
home, work = Path(sys.argv[1]), sys.argv[2]
for _ in range(1800):
    tasks = [t for t in ask(home, {"op": "tasks"}, timeout=10)["tasks"] if t["repo"]]
    if tasks and all(t["state"] in ("done", "failed") for t in tasks):
        break
    time.sleep(0.2)
else:
    sys.exit("the agents did not finish the repository's tasks")
for t in tasks:
    print(f"{t['id']}: {t['state']}: {t['result'] or t['reason']}")
PYEOF
$BZZZ task list --home "$work/m1" --state done
echo "Who did what, with which model (bzzz task trajectory):"
$PY - "$BZZZ" "$work/m1" <<'PYEOF'
import json, subprocess, sys
bzzz, home = sys.argv[1], sys.argv[2]
def cli(*args):
    return json.loads(subprocess.run([bzzz, *args, "--home", home, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
for task in cli("task", "list")["tasks"]:
    if not task["repo"]:
        continue
    for run in cli("task", "trajectory", task["id"])["runs"]:
        ended = run["ended"] or {}
        tools = " ".join(step["tool"] for step in run["steps"])
        print(f"  {task['id']}: {run['agent_name']} with {run['backend']} ({run['model']}) in "
              f"{run['sandbox']}: {ended.get('outcome')}, {ended.get('spent', {}).get('calls')} "
              f"model calls; tools: {tools}")
PYEOF
$BZZZ task trajectory local:fix-the-greeting-typo --home "$work/m1"

step "The branches in the repository: each commit signed by its agent, checked with git"
$BZZZ member list --home "$work/m1" --json | $PY -c '
import json, sys
from bzzz.home.keys import ssh_public_key_of
for m in json.load(sys.stdin)["members"]:
    agent = m["agent_id"]
    print(agent[:16] + "@agents.bzzz", ssh_public_key_of(bytes.fromhex(agent)))' \
  >"$work/allowed_signers"
for branch in $(git --git-dir "$repo" for-each-ref --format='%(refname:short)' refs/heads/bzzz/); do
  echo "== $branch"
  git --git-dir "$repo" -c gpg.ssh.allowedSignersFile="$work/allowed_signers" \
    log -1 --show-signature --format='%an: %s%n%b' "$branch" | sed -n '1,12p'
  git --git-dir "$repo" diff --stat "main...$branch" | tail -n 1
done
first=$(git --git-dir "$repo" for-each-ref --count=1 --format='%(refname:short)' refs/heads/bzzz/)
echo "Someone pushes a copy of $first (its trailers, no agent's signature) after the task ended:"
git clone -q "$repo" "$work/intruder"
git -C "$work/intruder" fetch -q origin "$first"
git -C "$work/intruder" checkout -q FETCH_HEAD
git -C "$work/intruder" -c user.name=x -c user.email=x@example.org commit -q --amend --no-edit
set +e
git -C "$work/intruder" push -q origin "HEAD:refs/heads/$first-2" 2>&1 | sed 's/^/  /'
set -e

step "Keys: m2 (developer) seals a note for developers: m1 (admin) and m2 read it, m3 (reviewer) cannot"
id_of() { $BZZZ id --home "$work/$1" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["agent_id"])'; }
for n in m1 m2 m3; do  # the admin grants each member the role keys it is entitled to
  for _ in $(seq 1 100); do
    $BZZZ keys status --home "$work/$n" --json | $PY -c 'import json,sys
rows = json.load(sys.stdin)["role_keys"]
sys.exit(0 if any(r["held"] for r in rows) else 1)' && break
    sleep 0.2
  done
done
sealed=$($BZZZ log append --home "$work/m2" --kind task.note --seal-for developer --json \
  --data '{"text": "the staging database password rotates on Friday"}' \
  | $PY -c 'import json,sys; e = json.load(sys.stdin); print(e["seq"])')
m2_id=$(id_of m2)
for n in m1 m3; do
  for _ in $(seq 1 100); do
    shown=$($BZZZ log show --home "$work/$n" --author "$m2_id" --kind task.note --json \
      | $PY -c 'import json,sys
for line in sys.stdin:
    e = json.loads(line)
    if e["seq"] == int(sys.argv[1]):
        print(e["data"].get("text") if e.get("opened") else e.get("sealed"))' "$sealed")
    [ -n "$shown" ] && break
    sleep 0.1
  done
  echo "  $n sees m2's seq $sealed: $shown"
done

step "Two more members join: m4 (architect) and m5 (reviewer); the admin grants their role keys"
read -r p4 p5 < <($PY -c 'import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
keys_until() {  # keys_until NODE TEST [SHOW]: wait until TEST holds of NODE's key status k; print SHOW
  $PY - "$work/$1" "$2" "${3:-}" <<'PYEOF'
import sys, time
from pathlib import Path
from bzzz.agent.control import ask
home, test, show = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
for _ in range(300):
    answer = ask(home, {"op": "keys_status"}, timeout=10)
    k = answer["keys"] if answer and answer.get("ok") else None
    if k is not None and eval(test, {"k": k}):
        break
    time.sleep(0.1)
else:
    sys.exit(f"{home.name}: gave up waiting until {test}")
if show:
    print(eval(show, {"k": k}))
PYEOF
}
for spec in m4:architect:$p4 m5:reviewer:$p5; do
  IFS=: read -r n role port <<<"$spec"
  token=$($BZZZ invite --home "$work/m1" --role "$role" --expires 10m 2>/dev/null)
  $BZZZ join "$token" --home "$work/$n" --name "$n" --listen "127.0.0.1:$port"
  start "$n" --peer "127.0.0.1:$p1"
done
echo "(no task folder, no model, agent.auto_claim off by default: they take no tasks)"
for n in m4 m5; do
  keys_until "$n" 'any(r["held"] for r in k["role_keys"])' \
    '"  '"$n"' holds the role keys of: " + ", ".join(sorted({r["role"] for r in k["role_keys"] if r["held"]}))'
done
$BZZZ member list --home "$work/m5"

step "The admin key: split 3-of-5 among the members (SLIP-39), then a reconstruction ceremony"
admin_id=$(leader_of "$work/m1")
read -r id_m1 id_m2 id_m3 id_m4 id_m5 admin_name < <($BZZZ member list --home "$work/m1" --json | $PY -c '
import json, sys
ids = {m["name"]: m["agent_id"] for m in json.load(sys.stdin)["members"]}
print(*[ids[f"m{n}"] for n in range(1, 6)], next(n for n, i in ids.items() if i == sys.argv[1]))' "$admin_id")
admin_home="$work/$admin_name"
split=$($BZZZ keys split --home "$admin_home" --threshold 3 --json \
  --holders "$id_m1,$id_m2,$id_m3,$id_m4,$id_m5" | $PY -c 'import json,sys; print(json.load(sys.stdin)["split"])')
echo "the admin ($admin_name) splits a new admin key 3-of-5 (entry ${split:0:12}): a share for each of m1..m5, sealed to it"
keys_until m4 "k['split'] and k['split']['entry'] == '$split'"
request=$($BZZZ keys reconstruct --home "$work/m4" --reason "demo: recovery drill" --json \
  | $PY -c 'import json,sys; print(json.load(sys.stdin)["request"])')
asked="next(c for c in k['ceremonies'] if c['entry'] == '$request')"
seen="'$request' in [c['entry'] for c in k['ceremonies']]"
state="$asked['status'] + ' | master_in_memory: ' + str(k['master_in_memory']).lower()"
release() {  # release NODE: NODE consents once the request reached it
  keys_until "$1" "$seen"
  $BZZZ keys release "${request:0:16}" --home "$work/$1"
}
echo "m4 asks for the admin key (request ${request:0:12}); m1 and m2 consent:"
release m1
release m2
keys_until m4 "len($asked['consents']) == 2" "'  on m4, after 2 consents: ' + $state"
echo "  (two shares of a 3-of-5 split rebuild nothing)"
echo "m5 consents too:"
release m5
keys_until m4 "k['master_in_memory']" "'  on m4, after 3 consents: ' + $state"
echo "the ceremony, as m4's logs record it (bzzz audit):"
$BZZZ audit --home "$work/m4" --json | $PY -c 'import json,sys
for c in json.load(sys.stdin)["ceremonies"]:
    shown = {k: c[k] for k in c if k in ("ceremony", "by_name", "status", "reason", "threshold", "holder_names")}
    if c["ceremony"] == "reconstruct":
        shown["consents"] = len(c["consents"])
    print("  ceremony:", shown)'

step "Context by UCXL address: m1 (role admin) records a decision; m3 finds it by address"
task=local:add-a-health-endpoint
decision="ucxl://${id_m1:0:16}:admin@demo:${task}/~latest/decisions/api.md"
$BZZZ decide --home "$work/m1" --address "$decision" --text "Health checks live at /healthz, unauthenticated."
for _ in $(seq 1 100); do
  $BZZZ ucxl get "$decision" --home "$work/m3" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "\$ bzzz ucxl get $decision --home m3"
$BZZZ ucxl get "$decision" --home "$work/m3" | sed 's/^/  /'
echo "\$ bzzz ucxl search 'ucxl://*:*@demo:${task}/~latest' --home m3"
$BZZZ ucxl search "ucxl://*:*@demo:${task}/~latest" --home "$work/m3" | sed 's/^/  /'
ucxi="http://127.0.0.1:$ucxi_port/ucxi/v1"
echo "The same through UCXI, m3's HTTP API (ucxi.listen: 127.0.0.1:$ucxi_port); without its token, refused:"
echo "\$ curl '$ucxi/resolve?address=...'"
curl -sS --noproxy '*' -w ' (HTTP %{http_code})\n' -G "$ucxi/resolve" --data-urlencode "address=$decision"
echo "\$ curl -H 'Authorization: Bearer TOKEN' '$ucxi/resolve?address=...'   (TOKEN: m3's ucxi.token, 0600)"
curl -fsS --noproxy '*' -H "Authorization: Bearer $(cat "$work/m3/ucxi.token")" -G "$ucxi/resolve" \
  --data-urlencode "address=$decision" | $PY -c 'import json, sys; v = json.load(sys.stdin)
print("  " + v["address"])
print("  by %s (%s, version %d of %d): %s" % (v["author_name"], v["kind"], v["version"], v["versions"], v["text"]))'
echo "m3 writes a note of its own with the Python client (a node writes only its own context):"
$PY - "http://127.0.0.1:$ucxi_port" "$work/m3/ucxi.token" "$task" <<'PYEOF'
import sys
from bzzz.client import UcxiClient
from bzzz.errors import UcxiError

url, token_file, task = sys.argv[1:4]
with UcxiClient(url, token_file=token_file) as ucxi:
    me = ucxi.status()["status"]
    note = f"ucxl://{me['agent_id'][:16]}:{me['role']}@demo:{task}/~latest/review/notes.md"
    written = ucxi.put(note, "Reviewed: /healthz needs no token, /readyz neither.")
    print(f"  wrote {written.version.address} ({written.version.kind})")
    try:
        ucxi.put(note.replace(me["agent_id"][:16], "abcd" * 4), "not mine")
    except UcxiError as refused:
        print(f"  and someone else's address is refused: HTTP {refused.status}: {refused}")
    for version in ucxi.search(f"ucxl://*:*@demo:{task}/~latest").found:
        print(f"  found {version.latest} by {version.author_name}")
PYEOF

step "Health, metrics and the dashboard: m1 serves them (http.listen: 127.0.0.1:$http_port)"
http="http://127.0.0.1:$http_port"
echo "\$ curl $http/healthz"
curl -sS --noproxy '*' "$http/healthz"
echo "\$ curl $http/readyz"
curl -sS --noproxy '*' -w '(HTTP %{http_code})\n' "$http/readyz"
echo "\$ curl -s $http/metrics | grep -E '^bzzz_(ready|peers_connected|election_term|election_leader_changes_total|claim_grants_total|entries_(appended|ingested)_total|tasks|hmmm_threads)[ {]'"
curl -sS --noproxy '*' "$http/metrics" \
  | grep -E '^bzzz_(ready|peers_connected|election_term|election_leader_changes_total|claim_grants_total|entries_(appended|ingested)_total|tasks|hmmm_threads)[ {]' \
  | grep -v ' 0\.0$'
echo "\$ curl $http/api/v1/state   (the dashboard's data: without the token, refused)"
curl -sS --noproxy '*' -w '(HTTP %{http_code})\n' "$http/api/v1/state"
http_token=$(cat "$work/m1/http.token")
curl -fsS --noproxy '*' -H "Authorization: Bearer $http_token" "$http/api/v1/state" \
  | $PY -c 'import json, sys; s = json.load(sys.stdin); e = s["election"]
print("with the token: agents", ", ".join(a["name"] for a in s["agents"]), "| leader", e["leader_name"], "in term", e["term"],
      "|", len(s["tasks"]), "tasks,", s["threads_live"], "live HMMM threads")'
$BZZZ status --home "$work/m1" | grep 'http:'
echo "the dashboard (live; the token is m1's $work/m1/http.token, 0600):"
echo "  $http/dashboard#token=$http_token"

step "A person's seat: the Human Agent Portal on this cluster"
echo "\$ bzzz hmmm inbox --home m1   (what the portal's \"Needs you\" lists for m1's member)"
$BZZZ hmmm inbox --home "$work/m1" | sed 's/^/  /'
echo "open the portal on m1 in another terminal while this cluster runs (it attaches to"
echo "m1's agent; q quits it and leaves the agent running):"
echo "  $BZZZ hap --home $work/m1"
if [ -t 0 ] && [ -t 1 ]; then
  read -r -p "Press Enter to stop the cluster and end the demo ... " _ || true
fi

step "Stop the daemons (SIGTERM): each finishes its write, closes connections, exits"
for n in 1 2 3 4 5; do eval "kill -TERM \$pid_m$n"; done
for n in 1 2 3 4 5; do eval "wait \$pid_m$n" 2>/dev/null || true; done
tail -n 2 "$work/m1.log"
pids=()
printf '\nDemo done. Everything above ran in %s, now removed.\n' "$work"
