"""Loading role definitions: the project's `.ucxl/roles.yaml`, else the packaged default.

A project is named on purpose (config key `project`), so a project folder that is missing,
or a roles file that is there but broken, is an error rather than a silent fall back to
the packaged roles: every node of a cluster must use the same roles.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from bzzz.domain.roles import Roles, parse_roles
from bzzz.errors import ConfigError, one_line
from bzzz.home.config import yaml_problem

ROLES_FILE = Path(".ucxl") / "roles.yaml"


def _project_roles_text(project: Path) -> tuple[str, str] | None:
    """The text of the project's roles file and its name, or None when the project has
    none (the packaged default applies)."""
    if not project.is_dir():
        what = "does not exist" if not project.exists() else "is not a folder"
        raise ConfigError(
            f"project: {project} {what} (config key `project`, relative to the node home: "
            "the folder that holds .ucxl/roles.yaml)"
        )
    path = project / ROLES_FILE
    if not (path.exists() or path.is_symlink()):
        return None
    if not path.is_file():
        what = "is a dangling link" if path.is_symlink() and not path.exists() else "is not a file"
        raise ConfigError(f"{path} {what}: fix it or remove it to use the packaged roles")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {one_line(exc)}") from None
    return text, str(path)


def load_roles(project: Path | None) -> Roles:
    found = _project_roles_text(project) if project is not None else None
    if found is not None:
        text, source = found
    else:
        text = resources.files("bzzz.home").joinpath("default_roles.yaml").read_text("utf-8")
        source = "the default roles"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(f"{source} is empty: it needs a top-level 'roles:' mapping")
    return parse_roles(data, source)
