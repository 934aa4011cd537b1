"""Logging through journald's native protocol, against a real AF_UNIX datagram socket
bound where the handler is told journald listens."""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.agent.logs import setup_logging
from bzzz.ops.journal import JournalHandler, priority_of, stderr_is_journal
from tests.ops.journal_wire import receive


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "journal.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, path
    sock.close()


def logger_with(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"bzzz.test.journal.{id(handler)}")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return log


def test_a_record_keeps_its_fields(journal: tuple[socket.socket, Path]) -> None:
    sock, path = journal
    handler = JournalHandler(socket_path=path)
    handler.set_fields(BZZZ_AGENT="ab" * 32, BZZZ_NODE="alpha")
    log = logger_with(handler)
    log.warning("peer %s is slow", "beta", extra={"BZZZ_PEER": "cd" * 32, "other": 1})
    line = sys._getframe().f_lineno - 1
    entry = receive(sock)
    assert entry["MESSAGE"] == ["peer beta is slow"]
    assert entry["PRIORITY"] == ["4"]
    assert entry["SYSLOG_IDENTIFIER"] == ["bzzz"]
    assert entry["LOGGER"] == [log.name]
    assert entry["CODE_FILE"] == [__file__]
    assert entry["CODE_LINE"] == [str(line)]
    assert entry["CODE_FUNC"] == ["test_a_record_keeps_its_fields"]
    assert entry["BZZZ_AGENT"] == ["ab" * 32]
    assert entry["BZZZ_NODE"] == ["alpha"]
    assert entry["BZZZ_PEER"] == ["cd" * 32]
    assert "OTHER" not in entry and "EXTRA_OTHER" not in entry  # only BZZZ_* pass
    handler.close()


def test_an_exception_goes_in_the_message_on_several_lines(
    journal: tuple[socket.socket, Path],
) -> None:
    sock, path = journal
    handler = JournalHandler(socket_path=path)
    log = logger_with(handler)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("the loop failed")
    entry = receive(sock)
    message = entry["MESSAGE"][0]
    assert message.startswith("the loop failed\nTraceback")
    assert "RuntimeError: boom" in message
    assert entry["PRIORITY"] == ["3"]
    handler.close()


def test_a_message_too_big_for_a_datagram_goes_as_a_memfd(
    journal: tuple[socket.socket, Path],
) -> None:
    sock, path = journal
    handler = JournalHandler(socket_path=path)
    big = "x" * (1 << 19)  # 512 KiB: more than a datagram may carry here
    logger_with(handler).info(big)
    entry = receive(sock)
    assert entry["MESSAGE"] == [big]
    assert entry["_VIA_MEMFD"] == ["1"]
    handler.close()


def test_without_journald_the_record_goes_to_the_fallback(tmp_path: Path) -> None:
    text = io.StringIO()
    fallback = logging.StreamHandler(text)
    handler = JournalHandler(socket_path=tmp_path / "nobody-listens", fallback=fallback)
    logger_with(handler).error("still said")
    assert text.getvalue() == "still said\n"
    handler.close()


def test_field_names_are_checked() -> None:
    handler = JournalHandler(socket_path=Path("/nonexistent"))
    for bad in ("lower", "_TRUSTED", "MESSAGE", "PRIORITY", "9X", "A" * 65):
        with pytest.raises(ValueError, match="not a field"):
            handler.set_fields(**{bad: "x"})
    handler.close()


def test_priorities() -> None:
    assert [priority_of(level) for level in (50, 40, 30, 20, 10, 5)] == [2, 3, 4, 6, 7, 7]


def test_stderr_is_the_journal_only_when_journal_stream_names_it(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as mine, open(tmp_path / "other", "w") as other:
        st = os.fstat(mine.fileno())
        value = f"{st.st_dev}:{st.st_ino}"
        assert stderr_is_journal({"JOURNAL_STREAM": value}, mine.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": value}, other.fileno())
        assert not stderr_is_journal({}, mine.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, mine.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "1:"}, mine.fileno())


def test_setup_logging_picks_the_journal_and_falls_back_to_stderr_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With stderr the journal but no journald socket here, records still reach stderr."""
    if Path("/run/systemd/journal/socket").exists():
        pytest.skip("journald listens here: the record would go to the real journal")
    with open(tmp_path / "stderr", "w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        st = os.fstat(stream.fileno())
        handler = setup_logging("info", False, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        try:
            assert isinstance(handler, JournalHandler)
            logging.getLogger("bzzz.test").info("said anyway")
        finally:
            handler.close()
            logging.getLogger("bzzz").handlers[:] = []
    assert (tmp_path / "stderr").read_text().rstrip().endswith("INFO    said anyway")


def test_setup_logging_keeps_text_when_stderr_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        handler = setup_logging("info", True, {"JOURNAL_STREAM": "1:2"})
        try:
            assert not isinstance(handler, JournalHandler)
            logging.getLogger("bzzz.test").info("as json")
        finally:
            logging.getLogger("bzzz").handlers[:] = []
    assert '"message": "as json"' in (tmp_path / "stderr").read_text()
