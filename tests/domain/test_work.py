"""The rules of working a task: caps, plans read back from a model, the conversation cut
to the context, and what a commit and a pull request say."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bzzz.domain import work as wk
from bzzz.domain.execution import ChatMessage, Reply, ToolCall
from bzzz.domain.tasks import TaskSpec

SPEC = TaskSpec(id="local:fix-it", title="Fix it", body="Please fix it.")


def test_spending_adds_up_and_each_cap_is_named() -> None:
    reply = Reply("", (), "m", prompt_tokens=1000, completion_tokens=500, seconds=2.0)
    spent = wk.Spent().add(reply, wk.Prices(prompt=3.0, completion=15.0)).add(reply)
    assert (spent.calls, spent.tokens, spent.model_s) == (2, 3000, 4.0)
    assert abs(spent.cost - 0.0105) < 1e-9  # the second turn had no prices
    assert wk.over_cap(wk.Caps(calls=3), spent, 1.0) is None
    assert "2 model calls" in (wk.over_cap(wk.Caps(calls=2), spent, 1.0) or "")
    assert "3000 spent" in (wk.over_cap(wk.Caps(tokens=3000), spent, 1.0) or "")
    assert "wall time" in (wk.over_cap(wk.Caps(wall_s=1.0), spent, 1.0) or "")
    assert "cost cap" in (wk.over_cap(wk.Caps(cost=0.01), spent, 1.0) or "")


def test_a_plan_is_read_with_its_files_and_bad_paths_are_dropped() -> None:
    text, files = wk.parse_plan(
        "Do the thing.\n**Files:** `src/a.py`, ../../etc/passwd, /abs, docs/b.md, src/a.py\n"
    )
    assert text == "Do the thing."
    assert files == ("src/a.py", "docs/b.md")
    assert wk.parse_plan("") == ("(the model gave no plan text)", ())
    assert wk.parse_plan("Files: none")[1] == ()


@given(st.text(max_size=3000))
def test_any_model_text_reads_as_a_plan_within_limits(text: str) -> None:
    plan, files = wk.parse_plan(text)
    assert plan and len(plan) <= wk.MAX_PLAN + 100
    assert len(files) <= wk.MAX_PLAN_FILES
    assert all(not f.startswith(("/", "..")) for f in files)


def test_the_conversation_is_cut_from_the_oldest_turns_keeping_calls_with_results() -> None:
    head = [ChatMessage("system", "rules"), ChatMessage("user", "task")]
    turns = []
    for n in range(50):
        call = ToolCall("read_file", {"path": f"f{n}"}, id=f"c{n}")
        turns.append(ChatMessage("assistant", "", (call,)))
        turns.append(ChatMessage("tool", "x" * 1000, tool_call_id=f"c{n}"))
    fitted = wk.fit_context([*head, *turns], context_tokens=4096)
    assert fitted[:2] == head and "earlier turns left out" in fitted[2].content
    assert fitted[-1] == turns[-1] and fitted[3].role == "assistant"
    assert sum(len(m.content) for m in fitted) / wk.CHARS_PER_TOKEN < 4096
    assert wk.fit_context([*head, *turns[:4]], None) == [*head, *turns[:4]]


def test_the_commit_carries_trailers_and_the_pr_fences_hostile_text() -> None:
    message = wk.commit_message(
        SPEC, "did it", (3, 7), b"\xab" * 32, "local:fix-it", "the plan", ["n2: Bzzz-Token: 9.9"]
    )
    assert "    the plan" in message and "transcript local:fix-it --verify" in message
    assert wk.trailers(message) == {
        "Bzzz-Task": "local:fix-it",
        "Bzzz-Token": "3.7",
        "Bzzz-Agent": "ab" * 32,
        "Bzzz-Thread": "local:fix-it",
    }
    assert wk.parse_token("3.7") == (3, 7) and wk.parse_token("3.x") is None
    proposal = wk.Proposal(
        spec=SPEC,
        plan="plan ```` with fences",
        summary="<script>x</script>",
        token=(3, 7),
        agent=b"\xab" * 32,
        agent_name="n|1",
        model="m",
        backend="replay",
        sandbox="bwrap",
        spent={"calls": 2},
        thread="local:fix-it",
        transcript=["n2 (objection): no"],
        issue_number=12,
    )
    body = wk.pr_body(proposal)
    assert "`````text\nplan ```` with fences\n`````" in body
    assert "Closes #12" in body and "| Fencing token | `3.7` |" in body
    assert "n/1" in body  # a name cannot break the table


def test_prompts_fence_the_task_and_carry_the_rules() -> None:
    messages = wk.plan_messages(SPEC, "You are {role}.", "developer", "old plan", ["too big"])
    assert messages[0].content.startswith("You are developer.") and wk.RULES in messages[0].content
    assert "<task-text>\nPlease fix it.\n</task-text>" in messages[1].content
    assert "old plan" in messages[1].content and "- too big" in messages[1].content
