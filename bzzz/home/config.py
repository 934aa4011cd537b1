"""config.yaml: validated on load, every error naming the key; `BZZZ_*` overrides.

An override's name is the key's path in capitals joined by ``_``: ``store.url`` is
``BZZZ_STORE_URL``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bzzz.domain.addresses import dialable, parse_address
from bzzz.errors import ConfigError, one_line

CONFIG_FILE = "config.yaml"
DEFAULT_STORE_URL = "sqlite:///store.db"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    url: str = Field(default=DEFAULT_STORE_URL, min_length=1)


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class MeshConfig(_Section):
    # The cluster's name is a label; its identity is the hash of its founding entry
    # (64 hex digits): membership folds from that one entry and nothing else.
    cluster: str | None = None
    cluster_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    listen: str = "0.0.0.0:7420"
    peers: list[str] = Field(default_factory=list)
    # Where other members dial this node, announced to them all in a signed entry. Empty:
    # the listen address, or with a wildcard listen (0.0.0.0) each interface's address.
    # Set it when those are not what others reach (NAT, a forwarded port, a DNS name).
    advertise: list[str] = Field(default_factory=list, max_length=8)
    mdns: bool = True
    heartbeat_s: float = Field(default=1.0, gt=0, le=60)
    availability_s: float = Field(default=30.0, gt=0, le=3600)
    # A peer is down when no heartbeat came for this many heartbeat intervals.
    missed_heartbeats: int = Field(default=3, ge=2, le=100)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_address(value)
        return value

    @field_validator("advertise", mode="before")
    @classmethod
    def _advertise(cls, value: object) -> object:
        if isinstance(value, str):  # from BZZZ_MESH_ADVERTISE: comma-separated
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str) and (problem := dialable(item)) is not None:
                    raise ValueError(problem)
        return value

    @field_validator("peers", mode="before")
    @classmethod
    def _peers(cls, value: object) -> object:
        if isinstance(value, str):  # from BZZZ_MESH_PEERS: comma-separated
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    parse_address(item)
        return value


class ElectionConfig(_Section):
    heartbeat_ms: int = Field(default=100, ge=10, le=10_000)
    election_min_ms: int = Field(default=1000, ge=50, le=600_000)
    election_max_ms: int = Field(default=2000, ge=50, le=600_000)
    # Leadership transfer to a markedly better candidate (see bzzz.domain.standing).
    transfer: bool = True
    transfer_margin: float = Field(default=15.0, gt=0, le=100)
    transfer_sustain_s: float = Field(default=30.0, ge=0, le=86_400)
    min_tenure_s: float = Field(default=60.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _timeouts(self) -> ElectionConfig:
        if not self.heartbeat_ms < self.election_min_ms <= self.election_max_ms:
            raise ValueError(
                "need heartbeat_ms < election_min_ms <= election_max_ms "
                f"(have {self.heartbeat_ms}, {self.election_min_ms}, {self.election_max_ms})"
            )
        return self


class AgentConfig(_Section):
    capabilities: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    max_tasks: int = Field(default=1, ge=0, le=1000)
    # A granted claim lapses this long after the grant or the holder's last progress.
    claim_lease_ms: int = Field(default=60_000, ge=1000, le=86_400_000)
    # Pick the next task from the board and ask for it, up to max_tasks at once.
    auto_claim: bool = False


_REPO_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_.:/-]{0,127}")


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ValueError("not an http(s) URL")
    if "@" in value.split("/")[2]:
        # A user or token in the URL would reach logs and entries through every error.
        raise ValueError("no user or password in the URL: give a token with token_env")
    return value.rstrip("/")


class _SourceBase(_Section):
    # Names the source's cursor in the log; every node that may become admin must give a
    # source the same name (and see the same folder, repositories or server).
    name: str | None = Field(default=None, pattern=rf"^{_SOURCE_NAME.pattern}$")


class LocalSourceConfig(_SourceBase):
    type: Literal["local"]
    path: str = Field(default="tasks", min_length=1)  # relative to the node home


class GitHubSourceConfig(_SourceBase):
    type: Literal["github"]
    repos: list[str] = Field(min_length=1, max_length=100)
    api_url: str = "https://api.github.com"
    # The token: from this environment variable, or from a file (mode 0600) named here.
    token_env: str | None = Field(default="GITHUB_TOKEN", pattern=rf"^{_ENV_NAME.pattern}$")
    token_file: str | None = None
    label: str = Field(default="bzzz-task", min_length=1, max_length=50)
    mirror: bool = True  # show claims on the issues (a label and comments)

    @field_validator("repos")
    @classmethod
    def _repos(cls, value: list[str]) -> list[str]:
        for repo in value:
            if not _REPO_NAME.fullmatch(repo):
                raise ValueError(f"{repo!r} is not OWNER/REPO")
        if len(set(value)) != len(value):
            raise ValueError("a repository is listed twice")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _http_url(value)


class HiveSourceConfig(_SourceBase):
    type: Literal["hive"]
    url: str
    token_env: str | None = Field(default=None, pattern=rf"^{_ENV_NAME.pattern}$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


SOURCE_TYPES = ("local", "github", "hive")
SourceConfig = Annotated[
    LocalSourceConfig | GitHubSourceConfig | HiveSourceConfig, Field(discriminator="type")
]


class TasksConfig(_Section):
    poll_s: float = Field(default=60.0, gt=0, le=86_400)
    sources: list[SourceConfig] = Field(default_factory=list, max_length=20)

    @field_validator("sources")
    @classmethod
    def _distinct(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            # Unnamed sources are named by what they read: a folder, an API, a server.
            where = getattr(source, "path", None) or getattr(source, "api_url", None)
            name = source.name or f"{source.type}:{where or getattr(source, 'url', '')}"
            if name in seen:
                raise ValueError(f"two sources are named {name!r}: give each a name")
            seen.add(name)
        return sources


class WebhookConfig(_Section):
    url: str
    # The HMAC-SHA256 secret comes from this environment variable (never from the file).
    secret_env: str | None = Field(default=None, pattern=rf"^{_ENV_NAME.pattern}$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class EscalationConfig(_Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list, max_length=10)


class HmmmConfig(_Section):
    objection_window_s: float = Field(default=30.0, ge=0, le=86_400)
    max_hops: int = Field(default=3, ge=1, le=20)
    max_participants: int = Field(default=5, ge=2, le=50)
    max_messages: int = Field(default=10, ge=2, le=500)
    ttl_s: float = Field(default=1800.0, gt=0, le=7 * 86_400)
    max_revisions: int = Field(default=2, ge=0, le=10)
    per_minute: int = Field(default=6, ge=1, le=600)
    # Review the plans of others with the built-in rules (overlapping files, dependencies).
    rule_reviewer: bool = True
    escalation: EscalationConfig = EscalationConfig()

    @model_validator(mode="after")
    def _window(self) -> HmmmConfig:
        if self.objection_window_s >= self.ttl_s:
            raise ValueError("objection_window_s must be shorter than ttl_s")
        return self


BACKENDS = ("ollama", "openai", "replay")
DEFAULT_URLS = {"ollama": "http://127.0.0.1:11434", "openai": "http://127.0.0.1:8000/v1"}


class ModelOverride(_Section):
    """Another backend or model for one role or one task type."""

    backend: Literal["ollama", "openai", "replay"] | None = None
    url: str | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    fallbacks: list[str] | None = Field(default=None, max_length=10)
    prompt: Literal["full", "compact"] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value) if value is not None else None


class CapsConfig(_Section):
    calls: int = Field(default=50, ge=1, le=100_000)
    tokens: int = Field(default=200_000, ge=100, le=1_000_000_000)
    wall_s: float = Field(default=1800.0, gt=0, le=7 * 86_400)
    cost: float | None = Field(default=None, gt=0)


class PricesConfig(_Section):
    """Per million tokens; a cost cap needs them."""

    prompt: float = Field(default=0.0, ge=0)
    completion: float = Field(default=0.0, ge=0)


class ReasoningConfig(_Section):
    backend: Literal["ollama", "openai", "replay"] = "ollama"
    url: str | None = None  # the backend's default when not given
    # An OpenAI-compatible server's key comes from this environment variable.
    api_key_env: str | None = Field(default=None, pattern=rf"^{_ENV_NAME.pattern}$")
    model: str | None = Field(default=None, min_length=1, max_length=200)
    fallbacks: list[str] = Field(default_factory=list, max_length=10)
    # replay: a folder of recordings, one per task (`TASK.json`, e.g. local-fix-it.json),
    # else `default.json`; relative to the node home.
    recordings: str | None = None
    # compact: the task's text alone, without the plan and discussion (a small model).
    prompt: Literal["full", "compact"] = "full"
    roles: dict[str, ModelOverride] = Field(default_factory=dict)
    task_types: dict[str, ModelOverride] = Field(default_factory=dict)
    caps: CapsConfig = CapsConfig()
    prices: PricesConfig | None = None
    context_length: int | None = Field(default=None, ge=512, le=10_000_000)
    ask_timeout_s: float = Field(default=300.0, gt=0, le=86_400)
    # The role's prompt template, relative to the home (default: the project's
    # .ucxl/templates/ROLE.md when there is one, else the built-in text).
    template: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value) if value is not None else None

    @model_validator(mode="after")
    def _complete(self) -> ReasoningConfig:
        if self.backend == "replay" and self.recordings is None:
            raise ValueError("backend replay needs recordings: a folder of recorded turns")
        if self.backend != "replay" and self.model is None:
            raise ValueError(f"backend {self.backend} needs a model")
        if self.caps.cost is not None and self.prices is None:
            raise ValueError("a cost cap needs prices (per million tokens)")
        for where, overrides in (("roles", self.roles), ("task_types", self.task_types)):
            for name, o in overrides.items():
                backend = o.backend or self.backend
                if backend == "replay" and self.recordings is None:
                    raise ValueError(f"{where}.{name}: replay needs recordings")
                if backend != "replay" and not (o.model or self.model):
                    raise ValueError(f"{where}.{name}: backend {backend} needs a model")
        return self


class SandboxLimitsConfig(_Section):
    wall_s: float = Field(default=300.0, gt=0, le=86_400)
    memory_mb: int = Field(default=2048, ge=16, le=1_048_576)
    pids: int = Field(default=256, ge=8, le=100_000)
    output_kb: int = Field(default=256, ge=1, le=1_048_576)


class SandboxConfig(_Section):
    # bubblewrap; or `unsandboxed`, only when chosen explicitly (shown in status and in
    # every step entry). Docker and podman are not built yet.
    backend: Literal["bwrap", "unsandboxed"] = "bwrap"
    limits: SandboxLimitsConfig = SandboxLimitsConfig()
    # More host folders the sandbox may read (a toolchain outside /usr).
    ro_paths: list[str] = Field(default_factory=list, max_length=50)


def _http_listen(value: object) -> object:
    """HOST:PORT, a port alone on 127.0.0.1, or empty (BZZZ_HTTP_LISTEN=) for off."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    port = text.removeprefix(":")
    if port.isdigit():  # a port alone: on this machine only
        text = f"127.0.0.1:{port}"
    parse_address(text)
    return text


def _file_name(value: str) -> str:
    if "\0" in value or not value.strip():
        raise ValueError("not a file name")
    return value


class HttpConfig(_Section):
    # Health (/healthz, /readyz), Prometheus /metrics and the mesh dashboard over HTTP.
    # Off unless set: HOST:PORT, or a port alone (9464) on 127.0.0.1.
    listen: str | None = None
    # /readyz fails while a connected peer holds more than this many entries we lack.
    ready_lag: int = Field(default=1000, ge=0, le=1_000_000_000)
    # The dashboard's bearer token (relative to the home): created, mode 0600, on the
    # first start with http on; a file of your own must be 0600 too.
    token_file: str = Field(default="http.token", min_length=1, max_length=4096)
    # Ask the dashboard's token of /metrics scrapers too (Prometheus: `authorization:
    # credentials_file:`). /healthz and /readyz never ask.
    metrics_auth: bool = False

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: object) -> object:
        return _http_listen(value)

    @field_validator("token_file")
    @classmethod
    def _token_file(cls, value: str) -> str:
        return _file_name(value)


class UcxiConfig(_Section):
    # UCXI, the HTTP API resolving UCXL addresses (and the node's status, tasks and
    # threads, read-only). Off unless set: HOST:PORT, or a port alone on 127.0.0.1.
    listen: str | None = None
    # Its bearer token (relative to the home): created, mode 0600, on the first start
    # with ucxi on; a file of your own must be 0600 too.
    token_file: str = Field(default="ucxi.token", min_length=1, max_length=4096)
    # HTTPS: a certificate and its key (PEM). With `tls_client_ca` too, mutual TLS: a
    # client must show a certificate that CA signed, and then needs no token.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: object) -> object:
        return _http_listen(value)

    @field_validator("token_file", "tls_cert", "tls_key", "tls_client_ca")
    @classmethod
    def _files(cls, value: str | None) -> str | None:
        return None if value is None else _file_name(value)

    @model_validator(mode="after")
    def _tls(self) -> UcxiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (the certificate and its key)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS)")
        return self


class NodeConfig(_Section):
    name: str
    role: str = "developer"
    # The project folder whose .ucxl/roles.yaml defines the roles (relative to the home);
    # without one, the packaged default roles.
    project: str | None = None
    store: StoreConfig = StoreConfig()
    log: LogConfig = LogConfig()
    mesh: MeshConfig = MeshConfig()
    election: ElectionConfig = ElectionConfig()
    agent: AgentConfig = AgentConfig()
    tasks: TasksConfig = TasksConfig()
    hmmm: HmmmConfig = HmmmConfig()
    # The model that plans and works tasks; without it a person does (the task and HMMM
    # commands).
    reasoning: ReasoningConfig | None = None
    sandbox: SandboxConfig = SandboxConfig()
    http: HttpConfig = HttpConfig()
    ucxi: UcxiConfig = UcxiConfig()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if not _ROLE.fullmatch(value):
            raise ValueError("must be lowercase letters, digits and '_', starting with a letter")
        return value


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What a YAML parser says is wrong, and where, in one line."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem}{where}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validate_config(
    data: object, source: str, overrides: Mapping[tuple[str, ...], str] | None = None
) -> NodeConfig:
    """Validate a config; the error names the key, or the `BZZZ_*` variable (from
    `overrides`: a key's path to the variable that set it) when one set that key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys to values")
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        # A tagged union adds its tag to the path (tasks.sources.0.github.repos): a key
        # path names keys only.
        raw = error["loc"]
        loc = tuple(
            str(part)
            for i, part in enumerate(raw)
            if not (i and isinstance(raw[i - 1], int) and part in SOURCE_TYPES)
        )
        key = ".".join(loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            text = str(error["msg"]).removeprefix("Value error, ").strip()
            message = text.splitlines()[0] if text else error["type"]
        for end in range(len(loc), 0, -1):
            variable = (overrides or {}).get(loc[:end])
            if variable is not None:
                raise ConfigError(
                    f"{variable}: {message} (it overrides {'.'.join(loc[:end])} of {source})"
                ) from None
        involved = sorted(v for k, v in (overrides or {}).items() if k[: len(loc)] == loc)
        also = f" (with {', '.join(involved)} from the environment)" if involved else ""
        raise ConfigError(f"{source}: {key}: {message}{also}") from None


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """`data` with every `BZZZ_<PATH>` override applied, and which variable set which key."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    overrides: dict[tuple[str, ...], str] = {}
    for name, field in NodeConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                variable = f"BZZZ_{name}_{sub}".upper()
                value = env.get(variable)
                if value is not None:
                    section = merged.setdefault(name, {})
                    if isinstance(section, dict):
                        section[sub] = value
                        overrides[(name, sub)] = variable
        elif (value := env.get(variable := f"BZZZ_{name}".upper())) is not None:
            merged[name] = value
            overrides[(name,)] = variable
    return merged, overrides


def load_config(home: Path, env: Mapping[str, str] | None = None) -> NodeConfig:
    path = home / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no {CONFIG_FILE} in {home}: is this a node home? (create one with `bzzz init`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    merged, overrides = _apply_env(data, os.environ if env is None else env)
    return validate_config(merged, str(path), overrides)


def write_config(home: Path, config: NodeConfig) -> None:
    """Write config.yaml with mode 0600, atomically: a reader sees the old file or the new
    one, never half of one, and never a moment when others may read it."""
    body = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    text = (
        "# BZZZ node configuration. Every key can be overridden by BZZZ_<PATH>, e.g.\n"
        "# BZZZ_STORE_URL. A relative SQLite path is relative to this folder.\n" + body
    )
    path = home / CONFIG_FILE
    try:
        fd, temp = tempfile.mkstemp(dir=home, prefix=f".{CONFIG_FILE}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {one_line(exc)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # mkstemp's mode, whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigError(f"cannot write {path}: {one_line(exc)}") from None
    with contextlib.suppress(OSError):  # the rename is durable once the folder is synced
        folder = os.open(home, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
