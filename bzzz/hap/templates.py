"""The portal's forms: templates with fields, each sending one control request that a
`bzzz` command also sends (so the portal can do nothing a script cannot). Packaged
defaults live in `bzzz/hap/templates/`; a project adds or replaces them with YAML files
in its `.ucxl/templates/` (a template of the same name wins).

A template (YAML)::

    name: objection            # [a-z][a-z0-9_-]*, unique
    title: Object to the plan
    help: one paragraph shown above the fields
    action: hmmm.object        # one of ACTIONS
    fixed: {}                  # request keys given here, not by the person
    fields:
      - {name: severity, label: Severity, type: choice, choices: [minor, major, blocking],
         default: major}
      - {name: reason, label: Why, type: text, required: true, max: 2000}

Field types: `line` (one line), `text` (several), `choice`, and the selections the form
is opened on: `thread`, `task`, `entry` (an entry hash, e.g. the question answered).
Every field name and fixed key must be a key of its action; every value is checked
against the action's limits again when sent, and by the node after that."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bzzz.domain import hmmm as hm
from bzzz.domain import task_entries as te
from bzzz.domain.claims import MAX_TASK
from bzzz.domain.tasks import MAX_LINK, task_id_problem
from bzzz.errors import ConfigError

PACKAGED = Path(__file__).parent / "templates"
PROJECT_DIR = Path(".ucxl") / "templates"
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_TEMPLATES = 100
MAX_FIELDS = 20
FIELD_TYPES = ("line", "text", "choice", "thread", "task", "entry")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_HASH = re.compile(r"[0-9a-f]{64}")
CLAIM_WAIT_S = 20


@dataclass(frozen=True)
class Key:
    """A request key an action takes: its limit, its allowed values, its flag in the
    equivalent command (None: the command's argument)."""

    limit: int
    flag: str | None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Action:
    request: Mapping[str, Any]  # what every request of the action carries
    keys: Mapping[str, Key]
    required: tuple[str, ...]
    command: tuple[str, ...]  # the `bzzz` command that sends the same request


_THREAD = Key(MAX_TASK + 2, None)
_TASK = Key(MAX_TASK, None)
ACTIONS: dict[str, Action] = {
    "hmmm.say": Action(
        {"op": "hmmm", "what": "say"},
        {
            "thread": _THREAD,
            "query_type": Key(64, "--type", hm.QUERY_TYPES),
            "text": Key(hm.MAX_TEXT, "--text"),
            "parent": Key(64, "--parent"),
            "to": Key(200, "--to"),
        },
        ("thread", "query_type", "text"),
        ("hmmm", "say"),
    ),
    "hmmm.object": Action(
        {"op": "hmmm", "what": "object"},
        {
            "thread": _THREAD,
            "severity": Key(16, "--severity", hm.SEVERITIES),
            "reason": Key(hm.MAX_TEXT, "--reason"),
            "resolve": Key(hm.MAX_TEXT, "--resolve"),
        },
        ("thread", "severity", "reason"),
        ("hmmm", "object"),
    ),
    "hmmm.approve": Action(
        {"op": "hmmm", "what": "approve"}, {"thread": _THREAD}, ("thread",), ("hmmm", "approve")
    ),
    "hmmm.resolve": Action(
        {"op": "hmmm", "what": "resolve"},
        {
            "thread": _THREAD,
            "outcome": Key(16, "--outcome", hm.OUTCOMES),
            "why": Key(hm.MAX_TEXT, "--why"),
        },
        ("thread", "outcome", "why"),
        ("hmmm", "resolve"),
    ),
    "hmmm.escalate": Action(
        {"op": "hmmm", "what": "escalate"},
        {"thread": _THREAD, "reason": Key(hm.MAX_TEXT, "--reason")},
        ("thread", "reason"),
        ("hmmm", "escalate"),
    ),
    "task.claim": Action(
        {"op": "claim", "needs": [], "wait": CLAIM_WAIT_S},
        {"task": _TASK},
        ("task",),
        ("claim", "request", "--wait", str(CLAIM_WAIT_S)),
    ),
    "task.phase": Action(
        {"op": "task_report", "what": "phase"},
        {"task": _TASK, "phase": Key(16, "--phase", te.PHASES)},
        ("task", "phase"),
        ("task", "progress"),
    ),
    "task.done": Action(
        {"op": "task_report", "what": "done"},
        {"task": _TASK, "result": Key(te.MAX_TEXT, "--result"), "link": Key(MAX_LINK, "--link")},
        ("task",),
        ("task", "done"),
    ),
    "task.fail": Action(
        {"op": "task_report", "what": "failed"},
        {"task": _TASK, "reason": Key(te.MAX_TEXT, "--reason")},
        ("task", "reason"),
        ("task", "fail"),
    ),
    "task.release": Action({"op": "release"}, {"task": _TASK}, ("task",), ("claim", "release")),
}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    required: bool = False
    max: int = 0  # characters; the action's limit when larger or 0
    choices: tuple[str, ...] = ()
    default: str = ""
    help: str = ""


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    action: str
    fields: tuple[Field, ...]
    fixed: Mapping[str, str] = field(default_factory=dict)
    help: str = ""
    source: str = "packaged"

    @property
    def on(self) -> str:
        """What the template acts on: a thread, or a task."""
        return "task" if self.action.startswith("task.") else "thread"


@dataclass
class Templates:
    by_name: dict[str, Template]
    problems: list[str]  # one line per project file that was not taken

    def get(self, name: str) -> Template | None:
        return self.by_name.get(name)


def _text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ConfigError(f"{where}: {key}: text is required")
    return value


def _field(data: object, action: Action, where: str) -> Field:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a field is a mapping (name, label, type, ...)")
    unknown = set(data) - {"name", "label", "type", "required", "max", "choices", "default", "help"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = _text(data, "name", where)
    key = action.keys.get(name)
    if key is None:
        raise ConfigError(
            f"{where}: {name!r} is not sent by this action ({', '.join(action.keys)})"
        )
    kind = _text(data, "type", f"{where} ({name})", "line")
    if kind not in FIELD_TYPES:
        raise ConfigError(f"{where} ({name}): type: one of {', '.join(FIELD_TYPES)}")
    required, limit = data.get("required", name in action.required), data.get("max", 0)
    if not isinstance(required, bool):
        raise ConfigError(f"{where} ({name}): required: true or false")
    if type(limit) is not int or limit < 0:
        raise ConfigError(f"{where} ({name}): max: a number of characters")
    choices = data.get("choices", list(key.choices) if kind == "choice" else [])
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ConfigError(f"{where} ({name}): choices: a list of values")
    wrong = [c for c in choices if key.choices and c not in key.choices]
    if wrong or (kind == "choice" and not choices):
        allowed = ", ".join(key.choices) or "any text"
        raise ConfigError(f"{where} ({name}): choices: from {allowed}")
    default = _text(data, "default", f"{where} ({name})", "")
    if default and choices and default not in choices:
        raise ConfigError(f"{where} ({name}): default: one of its choices")
    return Field(
        name,
        _text(data, "label", f"{where} ({name})", name.replace("_", " ").capitalize()),
        kind,
        required,
        min(limit, key.limit) if limit else key.limit,
        tuple(choices),
        default,
        _text(data, "help", f"{where} ({name})", ""),
    )


def parse_template(data: object, where: str) -> Template:
    """A template from its YAML data; ConfigError naming the file and key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a template is a mapping (name, title, action, fields)")
    unknown = set(data) - {"name", "title", "help", "action", "fixed", "fields"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = _text(data, "name", where)
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: name: lowercase letters, digits, '-' and '_'")
    action_name = _text(data, "action", where)
    action = ACTIONS.get(action_name)
    if action is None:
        raise ConfigError(f"{where}: action: one of {', '.join(ACTIONS)}")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fixed.items()
    ):
        raise ConfigError(f"{where}: fixed: a mapping of request keys to text")
    for key, value in fixed.items():
        found = action.keys.get(key)
        if found is None:
            raise ConfigError(f"{where}: fixed: {key!r} is not sent by {action_name}")
        if found.choices and value not in found.choices:
            raise ConfigError(f"{where}: fixed: {key}: one of {', '.join(found.choices)}")
    raw_fields = data.get("fields") or []
    if not isinstance(raw_fields, list) or len(raw_fields) > MAX_FIELDS:
        raise ConfigError(f"{where}: fields: a list of at most {MAX_FIELDS}")
    fields = tuple(_field(f, action, f"{where}: fields.{n}") for n, f in enumerate(raw_fields))
    names = [f.name for f in fields]
    if len(set(names)) != len(names) or set(names) & set(fixed):
        raise ConfigError(f"{where}: fields: each request key once (a field or fixed)")
    missing = [k for k in action.required if k not in names and k not in fixed]
    if missing:
        raise ConfigError(f"{where}: {action_name} needs {', '.join(missing)} (a field or fixed)")
    return Template(
        name,
        _text(data, "title", where),
        action_name,
        fields,
        dict(fixed),
        _text(data, "help", where, ""),
        where,
    )


def _read(path: Path) -> Template:
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    return parse_template(data, str(path))


def load_templates(project: Path | None) -> Templates:
    """The packaged templates, then the project's (`PROJECT/.ucxl/templates/*.yaml`),
    which add to them or replace one of the same name. A project file that is not a
    valid template is left out and named in `problems`."""
    found = {t.name: t for t in (_read(p) for p in sorted(PACKAGED.glob("*.yaml")))}
    problems: list[str] = []
    folder = project / PROJECT_DIR if project is not None else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("*.yaml"))[:MAX_TEMPLATES]:
            try:
                template = _read(path)
            except ConfigError as error:
                problems.append(str(error))
                continue
            found[template.name] = template
    return Templates(found, problems)


def check_values(template: Template, values: Mapping[str, str]) -> dict[str, str]:
    """What is wrong with what the person typed, by field name (empty: nothing)."""
    wrong: dict[str, str] = {}
    for f in template.fields:
        value = values.get(f.name, "")
        if not value.strip():
            if f.required:
                wrong[f.name] = f"{f.label}: required"
            continue
        if len(value) > f.max:
            wrong[f.name] = f"{f.label}: at most {f.max} characters (now {len(value)})"
        elif f.choices and value not in f.choices:
            wrong[f.name] = f"{f.label}: one of {', '.join(f.choices)}"
        elif f.type == "thread" and hm.thread_id_problem(value.strip()) is not None:
            wrong[f.name] = f"{f.label}: a task id (local:SLUG, github:OWNER/REPO#N) or x:HEX"
        elif f.type == "task" and (problem := task_id_problem(value.strip())) is not None:
            wrong[f.name] = f"{f.label}: {problem}"
        elif f.type == "entry" and not _HASH.fullmatch(value.strip()):
            wrong[f.name] = f"{f.label}: an entry hash (64 hex digits)"
    return wrong


def request_of(template: Template, values: Mapping[str, str]) -> dict[str, Any]:
    """The control request the template sends with these (checked) values."""
    action = ACTIONS[template.action]
    request: dict[str, Any] = {**action.request, **template.fixed}
    for f in template.fields:
        value = values.get(f.name, "")
        if f.type in ("thread", "task", "entry", "choice"):
            value = value.strip()
        if value.strip():
            request[f.name] = value
    return request


def command_of(template: Template, request: Mapping[str, Any], home: Path) -> str:
    """The `bzzz` command line that sends the same request."""
    action = ACTIONS[template.action]
    words = ["bzzz", *action.command]
    for key, spec in action.keys.items():
        value = request.get(key)
        if value is None:
            continue
        words += [str(value)] if spec.flag is None else [spec.flag, str(value)]
    words += ["--home", str(home)]
    return shlex.join(words)
