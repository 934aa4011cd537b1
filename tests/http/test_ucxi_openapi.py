"""Property-based tests of UCXI against its committed OpenAPI document
(`docs/ucxi-openapi.json`), with schemathesis: requests generated from the document,
sent to a real daemon, every answer checked against the document (status, content
type, schema), malformed requests refused, and never a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.agents import Agent, found, free_port, stop_all

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "ucxi-openapi.json"
# A body over the limit is refused with 413 before it is read: a rejection too.
REJECTIONS = ["400", "401", "404", "413"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
)
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    port = free_port()
    agent: Agent = found(tmp_path_factory.mktemp("ucxi-openapi"))
    agent.env = {"BZZZ_UCXI_LISTEN": f"127.0.0.1:{port}"}
    agent.start()
    try:
        token = (agent.home / "ucxi.token").read_text().strip()
        yield f"http://127.0.0.1:{port}", token
    finally:
        stop_all([agent])


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_keeps_the_document(case: schemathesis.Case, served: tuple[str, str]) -> None:
    url, token = served
    # Every check but "a request the schema allows is accepted": the schema says what an
    # address looks like, not whose it is (a write to another member's address is a 400).
    case.call_and_validate(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance],
    )
