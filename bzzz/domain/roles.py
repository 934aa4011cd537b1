"""Roles and authority: who may decide, vote, administer, and read whose content.

Pure rules over plain data. The definitions come from `.ucxl/roles.yaml` (or the packaged
default); every node of a cluster must use the same file, because membership is folded
with these rules and must come out the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from bzzz.errors import ConfigError

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELDS = {"authority", "description", "capabilities", "can_read", "prompt_template", "votes"}


class Authority(IntEnum):
    READ_ONLY = 0
    SUGGESTION = 1
    COORDINATION = 2
    DECISION = 3
    MASTER = 4

    @classmethod
    def parse(cls, text: str) -> Authority:
        return cls[text.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    authority: Authority
    description: str = ""
    capabilities: tuple[str, ...] = ()
    can_read: tuple[str, ...] = ()
    prompt_template: str | None = None
    votes: bool = True


@dataclass(frozen=True)
class Roles:
    by_name: Mapping[str, Role]

    def get(self, name: str) -> Role | None:
        return self.by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name


def can_decrypt(reader: Role, content_role: str) -> bool:
    """Whether `reader` may open content sealed for `content_role`."""
    return (
        reader.name == content_role
        or content_role in reader.can_read
        or reader.authority == Authority.MASTER
    )


def can_make_decisions(role: Role) -> bool:
    return role.authority >= Authority.DECISION


def is_admin_role(role: Role) -> bool:
    return role.authority == Authority.MASTER


def may_vote(role: Role) -> bool:
    """Voting members elect the admin; read_only never votes."""
    return role.votes and role.authority > Authority.READ_ONLY


def may_invite(actor: Role, role: Role) -> bool:
    """A member brings in others at most as powerful as itself, from coordination up."""
    return actor.authority >= Authority.COORDINATION and role.authority <= actor.authority


def may_remove(actor: Role, target: Role) -> bool:
    return actor.authority >= Authority.DECISION and target.authority <= actor.authority


def may_change_role(actor: Role, old: Role, new: Role) -> bool:
    top = max(old.authority, new.authority)
    return actor.authority >= Authority.DECISION and top <= actor.authority


def _problem(source: str, role: str, field: str, what: str) -> ConfigError:
    return ConfigError(f"{source}: role {role!r}: {field}: {what}")


def _names(value: Any, source: str, role: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _problem(source, role, field, "must be a list of names")
    return tuple(value)


def parse_roles(data: Any, source: str) -> Roles:
    """Validate role definitions (the `roles:` mapping of roles.yaml)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("roles"), Mapping):
        raise ConfigError(f"{source}: expected a top-level 'roles:' mapping of role names")
    roles: dict[str, Role] = {}
    for name, spec in data["roles"].items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{source}: role name {name!r}: lowercase letters, digits and _")
        if not isinstance(spec, Mapping):
            raise _problem(source, name, "(role)", "must be a mapping of fields")
        unknown = set(spec) - _FIELDS
        if unknown:
            raise _problem(source, name, sorted(unknown)[0], "unknown field")
        try:
            authority = Authority.parse(str(spec.get("authority")))
        except KeyError:
            levels = ", ".join(a.label for a in sorted(Authority, reverse=True))
            raise _problem(source, name, "authority", f"must be one of {levels}") from None
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise _problem(source, name, "description", "must be text")
        template = spec.get("prompt_template")
        if template is not None and not isinstance(template, str):
            raise _problem(source, name, "prompt_template", "must be a path")
        votes = spec.get("votes", authority > Authority.READ_ONLY)
        if not isinstance(votes, bool):
            raise _problem(source, name, "votes", "must be true or false")
        if votes and authority == Authority.READ_ONLY:
            raise _problem(source, name, "votes", "a read_only role never votes")
        roles[name] = Role(
            name,
            authority,
            description,
            _names(spec.get("capabilities"), source, name, "capabilities"),
            _names(spec.get("can_read"), source, name, "can_read"),
            template,
            votes,
        )
    for role in roles.values():
        for other in role.can_read:
            if other not in roles:
                raise _problem(source, role.name, "can_read", f"no role named {other!r}")
    if not roles:
        raise ConfigError(f"{source}: no roles defined")
    return Roles(roles)
