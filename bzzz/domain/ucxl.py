"""UCXL addresses (issue 21): the names of pieces of shared context and of their versions.

    ucxl://AGENT:ROLE@PROJECT:TASK/TEMPORAL[/PATH...]

for example ``ucxl://3f2a9c01:developer@bzzz:github:acme%2Fapi%2312/~latest/decisions/auth.md``.
`fixtures/ucxl/README.md` is the specification (the ABNF, what each part means, the limits
and why) and `fixtures/ucxl/vectors.json` the test suite another implementation must pass.

Pure: `parse` is a hand-written scanner over at most `MAX_ADDRESS` characters (linear, no
regular expressions, so no backtracking however hostile the text); it raises
`AddressError` with the 0-based position of the first wrong character and what the grammar
allows there. `str(address)` is the canonical form and ``parse(str(a)) == a`` for every
`Address`; an `Address` that could not be printed and read back cannot be built
(`ValueError`). `matches(pattern, address)` is the search rule: ``*`` in the agent, role,
project or task matches anything, an agent id prefix matches the ids it begins, a path
matches itself and everything below it, and the temporal segment is not part of a match.
"""

from __future__ import annotations

import calendar
import string
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import NoReturn

from bzzz.domain.claims import MAX_TASK
from bzzz.errors import AddressError

SCHEME = "ucxl://"
WILDCARD = "*"
MAX_ADDRESS = 2048  # characters, the whole address
MIN_AGENT, MAX_AGENT = 4, 64  # hex digits: a prefix of an agent id, or all of it
MAX_NAME = 64  # characters of a role or a project
MAX_SEGMENTS = 32
MAX_SEGMENT_BYTES = 255  # decoded, UTF-8: a file name's limit on most file systems
MAX_COUNT_DIGITS = 18
MAX_COUNT = 10**MAX_COUNT_DIGITS - 1  # versions back or forward, a version number
MIN_YEAR = 1970  # times are milliseconds since the Unix epoch, like an entry's ts
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MS_PER_DAY = 86_400_000
_EPOCH = date(1970, 1, 1).toordinal()

_DIGITS = frozenset(string.digits)
_HEX = frozenset(string.hexdigits)
_LOWER_HEX = frozenset("0123456789abcdef")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")  # RFC 3986 §2.3
_TASK_LITERAL = _UNRESERVED | {":"}
_ROLE_FIRST = frozenset(string.ascii_lowercase)
_ROLE_REST = _ROLE_FIRST | _DIGITS | {"_"}
_PROJECT_FIRST = _ROLE_FIRST | _DIGITS
_PROJECT_REST = _PROJECT_FIRST | {"-", ".", "_"}
_TEMPORAL_FORMS = "~latest, ~first, ~-N, ~+N, ~vN or ~YYYY-MM-DDTHH:MM:SSZ"


class TemporalKind(StrEnum):
    LATEST = "latest"  # ~latest: the newest version
    FIRST = "first"  # ~first: the oldest version
    BACK = "back"  # ~-N: N versions before the newest
    FORWARD = "forward"  # ~+N: N versions after the oldest
    VERSION = "version"  # ~vN: version N, counting the oldest as 1
    TIME = "time"  # ~2026-12-03T10:00:00Z: the newest version written at or before then


def _temporal_problem(kind: object, value: object) -> str | None:
    if not isinstance(kind, TemporalKind):
        return f"a temporal kind is a TemporalKind, not {type(kind).__name__}"
    if type(value) is not int:
        return f"a temporal value is an int, not {type(value).__name__}"
    if kind in (TemporalKind.LATEST, TemporalKind.FIRST):
        return None if value == 0 else f"~{kind.value} has no value"
    if kind is TemporalKind.TIME:
        return None if 0 <= value <= MAX_TIME_MS else "a time is from 1970 to 9999"
    return None if 1 <= value <= MAX_COUNT else f"a {kind.value} count is from 1 to {MAX_COUNT}"


@dataclass(frozen=True, slots=True)
class Temporal:
    """Which version of a piece of context an address names.

    `value`: 0 for LATEST and FIRST; the count (≥ 1) for BACK and FORWARD; the version
    number (≥ 1) for VERSION; milliseconds since the Unix epoch (UTC) for TIME.
    """

    kind: TemporalKind
    value: int = 0

    def __post_init__(self) -> None:
        problem = _temporal_problem(self.kind, self.value)
        if problem:
            raise ValueError(problem)

    def __str__(self) -> str:
        if self.kind is TemporalKind.LATEST or self.kind is TemporalKind.FIRST:
            return f"~{self.kind.value}"
        if self.kind is TemporalKind.BACK:
            return f"~-{self.value}"
        if self.kind is TemporalKind.FORWARD:
            return f"~+{self.value}"
        if self.kind is TemporalKind.VERSION:
            return f"~v{self.value}"
        return "~" + format_time(self.value)


LATEST = Temporal(TemporalKind.LATEST)
FIRST = Temporal(TemporalKind.FIRST)


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed UCXL address. Each of agent, role, project and task is either `WILDCARD`
    or a value: the agent in lowercase hex (4 to 64 digits), the task decoded (a BZZZ
    task id such as ``github:acme/api#12``), the path's segments decoded."""

    agent: str
    role: str
    project: str
    task: str
    temporal: Temporal = LATEST
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _address_problem(self)
        if problem:
            raise ValueError(problem)

    def __str__(self) -> str:
        path = "".join("/" + _encode(segment, _UNRESERVED) for segment in self.path)
        task = self.task if self.task == WILDCARD else _encode(self.task, _TASK_LITERAL)
        return f"{SCHEME}{self.agent}:{self.role}@{self.project}:{task}/{self.temporal}{path}"

    @property
    def is_pattern(self) -> bool:
        """Whether any of agent, role, project or task is the wildcard."""
        return WILDCARD in (self.agent, self.role, self.project, self.task)


def is_pattern(address: Address) -> bool:
    """Whether `address` has a wildcard, and so names a search rather than one item."""
    return address.is_pattern


def matches(pattern: Address, address: Address) -> bool:
    """Whether `address` is one of those `pattern` searches for.

    ``*`` matches any value (and a wildcard in `address` only a wildcard in `pattern`); an
    agent id prefix matches every id it begins; the pattern's path matches itself and the
    paths below it, so an empty path matches every path. The temporal segment says which
    versions to read once matched and takes no part here.
    """
    return (
        (pattern.agent == WILDCARD or address.agent.startswith(pattern.agent))
        and pattern.role in (WILDCARD, address.role)
        and pattern.project in (WILDCARD, address.project)
        and pattern.task in (WILDCARD, address.task)
        and address.path[: len(pattern.path)] == pattern.path
    )


def parse(text: str) -> Address:
    """The address `text` spells, or `AddressError` at the first character that is wrong.

    Accepted beyond the canonical form (and printed canonically by `str`): the scheme and
    the keywords ``latest``, ``first``, ``v``, ``T`` and ``Z`` in any case (ABNF's quoted
    strings are case-insensitive), hex digits of the agent in upper case, lower case hex
    in ``%XX``, percent-encoded characters that need no encoding, a time's fraction of one
    or two digits.
    """
    if not isinstance(text, str):
        raise AddressError(0, "text", f"a UCXL address is text, not {type(text).__name__}")
    scanner = _Scanner(text)
    if len(text) > MAX_ADDRESS:
        scanner.fail(f"the end (an address is at most {MAX_ADDRESS} characters)", MAX_ADDRESS)
    return scanner.address()


def format_time(ms: int) -> str:
    """The canonical text of a TIME segment's value (without the ``~``)."""
    days, rest = divmod(ms, _MS_PER_DAY)
    day = date.fromordinal(_EPOCH + days)
    seconds, milli = divmod(rest, 1000)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    fraction = f".{milli:03d}" if milli else ""
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"


def _encode(text: str, literal: frozenset[str]) -> str:
    return "".join(
        chr(byte) if chr(byte) in literal else f"%{byte:02X}" for byte in text.encode("utf-8")
    )


class _Scanner:
    """One pass over the text, left to right; every method leaves `pos` after what it read."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        at = self.pos + ahead
        return self.text[at] if at < len(self.text) else ""

    def fail(
        self, expected: str, at: int | None = None, found: str | None = None, hint: str = ""
    ) -> NoReturn:
        at = self.pos if at is None else at
        if found is None:
            found = repr(self.text[at]) if at < len(self.text) else "the end"
        where = f"bad UCXL address at position {at}"
        raise AddressError(at, expected, f"{where}: expected {expected}, found {found}{hint}")

    def address(self) -> Address:
        for char in SCHEME:
            if self.peek().lower() != char or not self.peek().isascii():
                self.fail(f"the scheme {SCHEME!r}")
            self.pos += 1
        agent = self.agent()
        role = self.name("a role", _ROLE_FIRST, _ROLE_REST, "@", "a lowercase letter first")
        project = self.name(
            "a project", _PROJECT_FIRST, _PROJECT_REST, ":", "a lowercase letter or digit first"
        )
        task = self.task()
        temporal = self.temporal()
        path = self.path()
        return Address(agent, role, project, task, temporal, path)

    def wildcard(self, end: str) -> bool:
        """Reads a ``*`` that is a whole component followed by `end`, if there is one."""
        if self.peek() != WILDCARD:
            return False
        self.pos += 1
        if self.peek() != end:
            self.fail(f"{end!r} after '*' (a wildcard is a whole component)")
        self.pos += 1
        return True

    def agent(self) -> str:
        if self.wildcard(":"):
            return WILDCARD
        start = self.pos
        while self.peek() in _HEX and self.pos - start < MAX_AGENT:
            self.pos += 1
        digits = self.pos - start
        if digits == 0:
            self.fail(f"an agent id ({MIN_AGENT} to {MAX_AGENT} hex digits) or '*'")
        if digits < MIN_AGENT:
            self.fail(f"a hex digit (an agent id has at least {MIN_AGENT})")
        if self.peek() != ":":
            if self.peek() in _HEX:
                self.fail(f"':' after the agent id (at most {MAX_AGENT} hex digits)")
            self.fail("a hex digit or ':' after the agent id")
        self.pos += 1
        return self.text[start : self.pos - 1].lower()

    def name(
        self, what: str, first: frozenset[str], rest: frozenset[str], end: str, rule: str
    ) -> str:
        if self.wildcard(end):
            return WILDCARD
        start = self.pos
        if self.peek() not in first:
            self.fail(f"{what} ({rule}) or '*'")
        self.pos += 1
        while self.peek() in rest and self.pos - start < MAX_NAME:
            self.pos += 1
        if self.peek() != end:
            if self.peek() in rest:
                self.fail(f"{end!r} ({what} is at most {MAX_NAME} characters)")
            extra = "'_'" if end == "@" else "'-', '.', '_'"
            self.fail(f"a lowercase letter, a digit, {extra} or {end!r}")
        self.pos += 1
        return self.text[start : self.pos - 1]

    def unit(self, literal: frozenset[str], expected: str) -> tuple[int, int]:
        """One byte of a task or a path segment, a character or ``%XX``, and where it began."""
        char, at = self.peek(), self.pos
        if char == "%":
            for ahead in (1, 2):
                if self.peek(ahead) not in _HEX:
                    self.fail("two hex digits after '%'", at + ahead)
            self.pos += 3
            return int(self.text[at + 1 : at + 3], 16), at
        if char not in literal:
            self.fail(expected, hint=_hint(char, in_task=literal is _TASK_LITERAL))
        self.pos += 1
        return ord(char), at

    def task(self) -> str:
        if self.wildcard("/"):
            return WILDCARD
        expected = "a task id character (a letter, a digit, - . _ ~ :, or %XX) or '/'"
        data = bytearray()
        while self.peek() not in ("/", ""):
            byte, at = self.unit(_TASK_LITERAL, expected)
            if not 0x21 <= byte <= 0x7E or byte == 0x2A:
                self.fail(
                    "a visible ASCII character other than '*' in the task id",
                    at,
                    found=repr(self.text[at : self.pos]),
                )
            data.append(byte)
            if len(data) > MAX_TASK:
                self.fail(f"'/' (a task id is at most {MAX_TASK} characters)", at)
        if not data:
            self.fail("a task id or '*'")
        task = data.decode("ascii")
        if not self.peek():
            self.fail(f"'/' and a temporal segment after the task ({_TEMPORAL_FORMS})")
        if self.peek(1) != "~" and task.startswith(("github:", "hive:")) and "/" not in task:
            self.fail("'%2F' for a '/' inside a github: or hive: task id")
        self.pos += 1
        return task

    def temporal(self) -> Temporal:
        if self.peek() != "~":
            hint = ""
            if self.peek() in ("*", "^"):
                hint = " (the Go BZZZ's *^, *~, ~~N, ^^N and *~N are not read here)"
            self.fail(f"a temporal segment ({_TEMPORAL_FORMS})", hint=hint)
        self.pos += 1
        char = self.peek()
        word = self.text[self.pos : self.pos + 6]
        if word.isascii() and word.lower() == "latest":
            self.pos += 6
            temporal = LATEST
        elif word[:5].isascii() and word[:5].lower() == "first":
            self.pos += 5
            temporal = FIRST
        elif char in ("-", "+"):
            self.pos += 1
            count = self.count("a count of versions")
            kind = TemporalKind.BACK if char == "-" else TemporalKind.FORWARD
            temporal = Temporal(kind, count)
        elif char in ("v", "V"):
            self.pos += 1
            temporal = Temporal(TemporalKind.VERSION, self.count("a version number"))
        elif char in _DIGITS:
            temporal = Temporal(TemporalKind.TIME, self.time())
        else:
            self.fail(f"latest, first, -N, +N, vN or a time after '~' ({_TEMPORAL_FORMS})")
        if self.peek() not in ("/", ""):
            self.fail("'/' or the end after the temporal segment")
        return temporal

    def count(self, what: str) -> int:
        start = self.pos
        if self.peek() not in _DIGITS:
            self.fail(f"a digit ({what})")
        if self.peek() == "0":
            self.fail(f"a digit from 1 to 9 ({what} starts at 1, without leading zeros)")
        while self.peek() in _DIGITS:
            if self.pos - start == MAX_COUNT_DIGITS:
                self.fail(f"'/' or the end ({what} has at most {MAX_COUNT_DIGITS} digits)")
            self.pos += 1
        return int(self.text[start : self.pos])

    def field(self, n: int, low: int, high: int, what: str) -> int:
        """`n` digits of a time, from `low` to `high`."""
        start = self.pos
        for _ in range(n):
            if self.peek() not in _DIGITS:
                self.fail("a digit (a time is YYYY-MM-DDTHH:MM:SS[.mmm]Z, in UTC)")
            self.pos += 1
        value = int(self.text[start : self.pos])
        if not low <= value <= high:
            self.fail(
                f"{what} from {low:0{n}d} to {high:0{n}d}", start, repr(self.text[start : self.pos])
            )
        return value

    def literal(self, chars: str, what: str) -> None:
        if not self.peek() or self.peek() not in chars:
            self.fail(what)
        self.pos += 1

    def time(self) -> int:
        year = self.field(4, MIN_YEAR, 9999, "a year")
        self.literal("-", "'-' after the year (YYYY-MM-DD)")
        month = self.field(2, 1, 12, "a month")
        self.literal("-", "'-' after the month (YYYY-MM-DD)")
        day = self.field(2, 1, calendar.monthrange(year, month)[1], "a day")
        self.literal("Tt", "'T' between the date and the time of day")
        hour = self.field(2, 0, 23, "an hour")
        self.literal(":", "':' after the hour (HH:MM:SS)")
        minute = self.field(2, 0, 59, "minutes")
        self.literal(":", "':' after the minutes (HH:MM:SS)")
        second = self.field(2, 0, 59, "seconds (no leap seconds)")
        milli = 0
        if self.peek() == ".":
            self.pos += 1
            start = self.pos
            while self.peek() in _DIGITS and self.pos - start < 3:
                self.pos += 1
            if self.pos == start:
                self.fail("a digit after '.' (milliseconds)")
            milli = int(self.text[start : self.pos].ljust(3, "0"))
            if self.peek() in _DIGITS:
                self.fail("'Z' (at most 3 digits after '.': milliseconds)")
        self.literal("Zz", "'Z' (a time is in UTC, written with Z)")
        days = date(year, month, day).toordinal() - _EPOCH
        return ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli

    def path(self) -> tuple[str, ...]:
        segments: list[str] = []
        while self.peek():  # a "/" here: the temporal segment and each segment end so
            if len(segments) == MAX_SEGMENTS:
                self.fail(f"the end (a path has at most {MAX_SEGMENTS} segments)")
            self.pos += 1
            segments.append(self.segment())
        return tuple(segments)

    def segment(self) -> str:
        start = self.pos
        data = bytearray()
        utf8 = _Utf8()
        while self.peek() not in ("/", ""):
            byte, at = self.unit(
                _UNRESERVED, "a path character (a letter, a digit, - . _ ~, or %XX) or '/'"
            )
            problem: str | None = "a byte other than '/' or a control character in a segment"
            if byte >= 0x20 and byte not in (0x2F, 0x7F):
                problem = utf8.feed(byte)
            if problem:
                self.fail(problem, at, repr(self.text[at : self.pos]))
            data.append(byte)
            if len(data) > MAX_SEGMENT_BYTES:
                self.fail(
                    f"'/' or the end (a path segment is at most {MAX_SEGMENT_BYTES} bytes)", at
                )
        if not data:
            self.fail("a path segment (no empty segments, no '/' at the end)")
        if utf8.need:
            self.fail(f"the rest of a UTF-8 character ({utf8.range()})")
        segment = data.decode("utf-8")
        if segment in (".", ".."):
            self.fail(
                "a path segment other than '.' or '..'", start, repr(self.text[start : self.pos])
            )
        return segment


def _hint(char: str, in_task: bool) -> str:
    """How `char`, found where it may not be written as it is, would be written."""
    if in_task and not "!" <= char <= "~":
        return ""  # not even encoded: a task id is visible ASCII
    if char == "" or char < " " or char == "\x7f" or (in_task and char == WILDCARD):
        return ""
    try:
        encoded = _encode(char, frozenset())
    except UnicodeEncodeError:  # a lone surrogate
        return ""
    return f" ({'in a task id' if in_task else 'in a path'}, {char!r} is written {encoded})"


class _Utf8:
    """Checks UTF-8 a byte at a time (RFC 3629 §4: no overlong forms, no surrogates, nothing
    past U+10FFFF), so that a bad byte is reported where it is."""

    __slots__ = ("high", "low", "need")

    def __init__(self) -> None:
        self.need, self.low, self.high = 0, 0x80, 0xBF

    def range(self) -> str:
        return f"%{self.low:02X} to %{self.high:02X}"

    def feed(self, byte: int) -> str | None:
        """None when `byte` may come next, else what was expected."""
        if self.need:
            if not self.low <= byte <= self.high:
                return f"a UTF-8 continuation byte ({self.range()})"
            self.need, self.low, self.high = self.need - 1, 0x80, 0xBF
            return None
        if byte < 0x80:
            return None
        lead = _UTF8_LEADS.get(byte)
        if lead is None:
            return "a byte that can begin a UTF-8 character"
        self.need, self.low, self.high = lead
        return None


def _utf8_leads() -> dict[int, tuple[int, int, int]]:
    """For each byte that begins a multibyte UTF-8 character: how many bytes follow, and
    the range the first of them must be in (RFC 3629 §4)."""
    leads = {b: (1, 0x80, 0xBF) for b in range(0xC2, 0xE0)}
    leads |= {b: (2, 0x80, 0xBF) for b in range(0xE1, 0xF0)}
    leads |= {0xE0: (2, 0xA0, 0xBF), 0xED: (2, 0x80, 0x9F)}
    leads |= {b: (3, 0x80, 0xBF) for b in range(0xF1, 0xF4)}
    leads |= {0xF0: (3, 0x90, 0xBF), 0xF4: (3, 0x80, 0x8F)}
    return leads


_UTF8_LEADS = _utf8_leads()


def _address_problem(address: Address) -> str | None:
    agent, role, project, task = address.agent, address.role, address.project, address.task
    for name, value in (("agent", agent), ("role", role), ("project", project), ("task", task)):
        if not isinstance(value, str):
            return f"the {name} is text, not {type(value).__name__}"
    if agent != WILDCARD and not (
        MIN_AGENT <= len(agent) <= MAX_AGENT and all(c in _LOWER_HEX for c in agent)
    ):
        return f"an agent is {MIN_AGENT} to {MAX_AGENT} lowercase hex digits or '*'"
    if role != WILDCARD and not _is_name(role, _ROLE_FIRST, _ROLE_REST):
        return "a role is a lowercase letter, then lowercase letters, digits or '_'"
    if project != WILDCARD and not _is_name(project, _PROJECT_FIRST, _PROJECT_REST):
        return "a project is a lowercase letter or digit, then those or '-', '.', '_'"
    if task != WILDCARD and not (
        0 < len(task) <= MAX_TASK and all("!" <= c <= "~" and c != WILDCARD for c in task)
    ):
        return f"a task is 1 to {MAX_TASK} visible ASCII characters other than '*', or '*'"
    if not isinstance(address.temporal, Temporal):
        return f"the temporal is a Temporal, not {type(address.temporal).__name__}"
    path = address.path
    if not isinstance(path, tuple):
        return f"the path is a tuple, not {type(path).__name__}"
    if len(path) > MAX_SEGMENTS:
        return f"a path has at most {MAX_SEGMENTS} segments"
    for segment in path:
        problem = _segment_problem(segment)
        if problem:
            return problem
    if len(str(address)) > MAX_ADDRESS:
        return f"an address is at most {MAX_ADDRESS} characters"
    return None


def _is_name(text: str, first: frozenset[str], rest: frozenset[str]) -> bool:
    return 0 < len(text) <= MAX_NAME and text[0] in first and all(c in rest for c in text[1:])


def _segment_problem(segment: object) -> str | None:
    if not isinstance(segment, str):
        return f"a path segment is text, not {type(segment).__name__}"
    try:
        size = len(segment.encode("utf-8"))
    except UnicodeEncodeError:
        return "a path segment is valid Unicode (no lone surrogates)"
    if not 0 < size <= MAX_SEGMENT_BYTES:
        return f"a path segment is 1 to {MAX_SEGMENT_BYTES} bytes of UTF-8"
    if segment in (".", ".."):
        return "a path segment is not '.' or '..'"
    if any(c < " " or c in "/\x7f" for c in segment):
        return "a path segment has no '/' and no control characters"
    return None
