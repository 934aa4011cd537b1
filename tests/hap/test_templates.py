"""The portal's templates: the packaged ones load, a project's add to them or replace
one, a bad one is left out with a line naming its file and key, and what a person types
is checked field by field before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bzzz.domain import hmmm as hm
from bzzz.errors import ConfigError
from bzzz.hap.templates import (
    ACTIONS,
    check_values,
    command_of,
    load_templates,
    parse_template,
    request_of,
)

ISSUE_TEMPLATES = ("clarification", "answer", "objection", "approval", "resolution", "decision")


def test_the_packaged_templates_cover_the_issue_and_every_task_report() -> None:
    templates = load_templates(None)
    assert not templates.problems
    for name in (*ISSUE_TEMPLATES, "take", "progress", "done", "release"):
        assert name in templates.by_name
    used = {t.action for t in templates.by_name.values()}
    assert used == set(ACTIONS)


def test_each_template_sends_what_its_command_sends() -> None:
    templates = load_templates(None)
    objection = templates.by_name["objection"]
    values = {"thread": "local:login", "severity": "major", "reason": "no tests", "resolve": ""}
    request = request_of(objection, values)
    assert request == {
        "op": "hmmm",
        "what": "object",
        "thread": "local:login",
        "severity": "major",
        "reason": "no tests",
    }
    assert command_of(objection, request, Path("/h")) == (
        "bzzz hmmm object local:login --severity major --reason 'no tests' --home /h"
    )
    answer = templates.by_name["answer"]
    request = request_of(answer, {"thread": "local:x", "parent": "ab" * 32, "text": "yes"})
    assert request["query_type"] == "answer" and request["parent"] == "ab" * 32
    take = templates.by_name["take"]
    assert command_of(take, request_of(take, {"task": "local:x"}), Path("/h")) == (
        "bzzz claim request --wait 20 local:x --home /h"
    )


def test_bad_values_are_named_by_field() -> None:
    templates = load_templates(None)
    objection = templates.by_name["objection"]
    wrong = check_values(objection, {"thread": "local:x", "severity": "major", "reason": "  "})
    assert wrong == {"reason": "Why: required"}
    long = "x" * (hm.MAX_TEXT + 1)
    wrong = check_values(objection, {"thread": "local:x", "severity": "major", "reason": long})
    assert wrong["reason"] == f"Why: at most {hm.MAX_TEXT} characters (now {hm.MAX_TEXT + 1})"
    wrong = check_values(objection, {"thread": "nope", "severity": "huge", "reason": "r"})
    assert set(wrong) == {"thread", "severity"}
    answer = templates.by_name["answer"]
    assert "parent" in check_values(answer, {"thread": "local:x", "parent": "12", "text": "t"})
    take = templates.by_name["take"]
    assert "task" in check_values(take, {"task": "Not A Task"})


def test_a_project_template_adds_or_replaces_and_a_bad_one_is_named(tmp_path: Path) -> None:
    folder = tmp_path / ".ucxl" / "templates"
    folder.mkdir(parents=True)
    (folder / "security.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "security-objection",
                "title": "Security objection",
                "action": "hmmm.object",
                "fixed": {"severity": "blocking"},
                "fields": [
                    {"name": "thread", "type": "thread"},
                    {"name": "reason", "type": "text", "max": 500},
                ],
            }
        )
    )
    (folder / "approval.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "approval",
                "title": "LGTM",
                "action": "hmmm.approve",
                "fields": [{"name": "thread", "type": "thread"}],
            }
        )
    )
    (folder / "bad.yaml").write_text("name: x\ntitle: X\naction: hmmm.delete\n")
    (folder / "worse.yaml").write_text("{{{")
    (folder / "prompt.md").write_text("a role's prompt template, not a form")
    templates = load_templates(tmp_path)
    security = templates.by_name["security-objection"]
    assert security.fixed == {"severity": "blocking"} and security.fields[1].max == 500
    assert security.fields[1].required  # the action needs a reason
    assert templates.by_name["approval"].title == "LGTM"
    assert len(templates.problems) == 2
    assert "bad.yaml: action: one of hmmm.say" in templates.problems[0]
    assert "worse.yaml: not valid YAML" in templates.problems[1]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"name": "x", "title": "X", "action": "hmmm.approve"}, "needs thread"),
        (
            {
                "name": "x",
                "title": "X",
                "action": "hmmm.approve",
                "fields": [{"name": "thread"}, {"name": "token"}],
            },
            "'token' is not sent by this action",
        ),
        (
            {
                "name": "x",
                "title": "X",
                "action": "hmmm.object",
                "fixed": {"severity": "apocalyptic"},
                "fields": [{"name": "thread"}, {"name": "reason"}],
            },
            "fixed: severity: one of minor",
        ),
        (
            {
                "name": "x",
                "title": "X",
                "action": "hmmm.say",
                "fields": [
                    {"name": "thread"},
                    {"name": "text"},
                    {"name": "query_type", "type": "choice", "choices": ["rant"]},
                ],
            },
            "choices: from clarification_needed",
        ),
        ({"name": "Bad Name", "title": "X", "action": "hmmm.approve"}, "name: lowercase"),
        ([], "a template is a mapping"),
        ({"name": "x", "title": "X", "action": "task.claim", "extra": 1}, "unknown key 'extra'"),
    ],
)
def test_a_bad_template_is_refused_naming_the_key(data: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        parse_template(data, "t.yaml")
