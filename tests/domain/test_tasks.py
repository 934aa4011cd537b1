"""The task model's pure rules: ids, what labels and front matter say, dependencies,
and the states a task moves through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.domain.tasks import (
    DEFAULT_PRIORITY,
    TaskEvent,
    TaskSpec,
    TaskState,
    dependencies_in,
    fields_of_labels,
    is_claimable,
    source_of,
    spec_from_front_matter,
    spec_from_github,
    step,
    task_id_problem,
)

S, E = TaskState, TaskEvent


@pytest.mark.parametrize(
    "text",
    ["github:octo-org/hello.world#12", "local:fix-the-docs", "hive:bzzz/42", "local:a"],
)
def test_task_ids_name_their_source(text: str) -> None:
    assert task_id_problem(text) is None
    assert source_of(text) in ("github", "local", "hive")


@pytest.mark.parametrize(
    "text",
    [
        "github:octo/hello#0",
        "github:-octo/hello#1",
        "github:octo/hello",
        "local:Fix",
        "local:",
        "hive:bzzz",
        "jira:X-1",
        "local:" + "a" * 300,
        "",
    ],
)
def test_anything_else_is_not_a_task_id(text: str) -> None:
    problem = task_id_problem(text)
    assert problem is not None and ("not a task id" in problem or "at most" in problem)


@given(st.one_of(st.text(max_size=300), st.integers(), st.none()))
def test_a_task_id_check_never_raises(value: object) -> None:
    assert task_id_problem(value) is None or isinstance(task_id_problem(value), str)


def test_labels_give_priority_type_and_needs() -> None:
    fields = fields_of_labels(
        [
            "bzzz-task",
            "Priority-2",
            "priority-0",
            "type-bug",
            "type-docs",
            "needs-rust",
            "needs-rust",
        ]
    )
    assert (fields.priority, fields.type, fields.needs) == (0, "bug", ("rust",))
    none = fields_of_labels(["priority-high", "type-", "needs-Has Space", "priority-10"])
    assert (none.priority, none.type, none.needs) == (None, None, ())


def test_a_body_names_its_dependencies_once_each() -> None:
    body = "Depends on #3.\nAlso depends on other-org/lib#7, and depends on #3 again."
    assert dependencies_in(body, "octo", "app") == ("github:octo/app#3", "github:other-org/lib#7")
    assert dependencies_in("no deps; #4 is only mentioned", "octo", "app") == ()


def test_a_github_issue_becomes_a_task() -> None:
    spec = spec_from_github(
        "octo", "app", 9, "Fix it", "depends on #2", ["priority-1", "needs-python"], "https://x"
    )
    assert spec == TaskSpec(
        id="github:octo/app#9",
        title="Fix it",
        body="depends on #2",
        labels=("priority-1", "needs-python"),
        priority=1,
        needs=("python",),
        repo="https://github.com/octo/app.git",
        depends_on=("github:octo/app#2",),
        url="https://x",
    )
    assert spec_from_github("o", "r", 1, "t", "", []).priority == DEFAULT_PRIORITY


def test_front_matter_becomes_a_task() -> None:
    spec = spec_from_front_matter(
        "write-docs",
        {
            "title": " Write docs ",
            "priority": 0,
            "type": "docs",
            "needs": ["writing"],
            "depends_on": ["setup", "github:octo/app#2"],
            "repo": "../app",
        },
        "The body.",
    )
    assert isinstance(spec, TaskSpec)
    assert (spec.id, spec.title, spec.priority, spec.type) == (
        "local:write-docs",
        "Write docs",
        0,
        "docs",
    )
    assert spec.needs == ("writing",) and spec.repo == "../app"
    assert spec.depends_on == ("local:setup", "github:octo/app#2")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"title": "t", "priorty": 1}, "unknown key 'priorty'"),
        ({}, "title:"),
        ({"title": ""}, "title:"),
        ({"title": "t", "priority": "high"}, "priority:"),
        ({"title": "t", "priority": 12}, "priority:"),
        ({"title": "t", "priority": True}, "priority:"),
        ({"title": "t", "type": "Two Words"}, "type:"),
        ({"title": "t", "needs": [1]}, "needs:"),
        ({"title": "t", "depends_on": ["jira:X-1"]}, "depends_on:"),
        ({"title": "t", "repo": 5}, "repo:"),
    ],
)
def test_bad_front_matter_names_the_key(data: dict[str, object], words: str) -> None:
    problem = spec_from_front_matter("slug", data, "")
    assert isinstance(problem, str) and words in problem, problem


def test_a_file_name_that_cannot_be_a_slug_is_named() -> None:
    problem = spec_from_front_matter("Has Spaces", {"title": "t"}, "")
    assert isinstance(problem, str) and "file name" in problem


def test_a_task_goes_from_open_to_done() -> None:
    state = S.OPEN
    for event in (
        E.CLAIMED,
        E.PLANNING,
        E.PLANNING,
        E.WORKING,
        E.REVIEW,
        E.WORKING,
        E.REVIEW,
        E.COMPLETED,
    ):
        after = step(state, event)
        assert isinstance(after, TaskState), (state, event, after)
        state = after
    assert state is S.DONE
    assert step(S.DONE, E.CLOSED) is S.CLOSED and step(S.CLOSED, E.REOPENED) is S.OPEN


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.OPEN, E.COMPLETED),
        (S.OPEN, E.PLANNING),
        (S.CLAIMED, E.WORKING),
        (S.CLAIMED, E.CLAIMED),
        (S.DONE, E.CLAIMED),
        (S.BLOCKED, E.CLAIMED),
        (S.CLOSED, E.CLAIMED),
        (S.RELEASED, E.COMPLETED),
        (S.WORKING, E.UNBLOCKED),
    ],
)
def test_impossible_transitions_say_why(state: TaskState, event: TaskEvent) -> None:
    problem = step(state, event)
    assert isinstance(problem, str) and state.value in problem and event.value in problem


def test_work_in_progress_can_fail_escalate_or_be_released_and_claimed_again() -> None:
    for held in (S.CLAIMED, S.PLANNING, S.WORKING, S.REVIEW):
        assert step(held, E.FAILED) is S.FAILED and step(held, E.RELEASED) is S.RELEASED
        assert step(held, E.ESCALATED) is S.ESCALATED
    assert step(S.ESCALATED, E.RESOLVED) is S.CLAIMED
    for free in (S.RELEASED, S.FAILED, S.OPEN):
        assert is_claimable(free) and step(free, E.CLAIMED) is S.CLAIMED
        assert step(free, E.BLOCKED) is S.BLOCKED
    assert step(S.BLOCKED, E.UNBLOCKED) is S.OPEN and not is_claimable(S.BLOCKED)


def test_every_state_is_reachable_and_every_step_is_an_answer() -> None:
    seen, frontier = {S.OPEN}, [S.OPEN]
    while frontier:
        state = frontier.pop()
        for event in E:
            after = step(state, event)
            assert isinstance(after, TaskState | str)
            if isinstance(after, TaskState) and after not in seen:
                seen.add(after)
                frontier.append(after)
    assert seen == set(S)
