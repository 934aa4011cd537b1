from __future__ import annotations

import compileall
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import bzzz
from bzzz.domain.identity import Ed25519Signer
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl, resolve_store_url
from tests.support.pg_server import create_database, drop_database, postgres_cluster


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write bzzz's bytecode once, before the run. The tests start `python -m bzzz` (the
    CLI, the agents) hundreds of times, and where PYTHONDONTWRITEBYTECODE is set (this
    machine's environment sets it, so CI's does) none of them keeps what it compiled: in
    a fresh clone each would compile every bzzz module it imports again, about 0.25 s of
    CPU a start on top of the 1.3 s of its imports."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the main process (xdist's or not)
        compileall.compile_dir(Path(bzzz.__file__).parent, quiet=1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the whole run: BZZZ_TEST_POSTGRES_URL, or one we start.

    Under pytest-xdist (`make test` runs the suite in parallel processes) a session is one
    worker's: each worker starts a server of its own, on a port of its own, and every
    test still gets a fresh database of its own below."""
    external = os.environ.get("BZZZ_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUrl:
    if request.param == "sqlite":
        return resolve_store_url(f"sqlite:///{tmp_path / 'store.db'}")
    return resolve_store_url(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: StoreUrl) -> Iterator[EventStore]:
    with EventStore(store_url) as opened:
        yield opened


def make_signer(n: int) -> Ed25519Signer:
    return Ed25519Signer(bytes([n]) * 32)


@pytest.fixture
def alice() -> Ed25519Signer:
    return make_signer(1)


@pytest.fixture
def bob() -> Ed25519Signer:
    return make_signer(2)
