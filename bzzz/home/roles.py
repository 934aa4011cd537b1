"""Loading role definitions: the project's `.ucxl/roles.yaml`, else the packaged default."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from bzzz.domain.roles import Roles, parse_roles
from bzzz.errors import ConfigError

ROLES_FILE = Path(".ucxl") / "roles.yaml"


def load_roles(project: Path | None) -> Roles:
    if project is not None and (project / ROLES_FILE).is_file():
        path = project / ROLES_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        source = str(path)
    else:
        text = resources.files("bzzz.home").joinpath("default_roles.yaml").read_text("utf-8")
        source = "the default roles"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_roles(data, source)
