"""What a deployment copies over: a wheel built from this checkout and a wheelhouse of
its dependencies, so that the host installs with `pip --no-index` (it needs no
internet). Both are cached: the wheel by a hash of the sources, the wheelhouse by the
wheel's requirements and the host's Python and machine, under
$XDG_CACHE_HOME/bzzz/deploy (~/.cache/bzzz/deploy).

Measured here: building the wheel about 5 s, the wheelhouse (44 wheels, 29 MB) about
6 s from pip's cache; both once per change.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bzzz
from bzzz.errors import UsageError, one_line

PIP_TIMEOUT_S = 600.0
KEEP_WHEELS = 5  # wheels of earlier sources kept in the cache


@dataclass(frozen=True, slots=True)
class Bundle:
    """The wheel to install and every wheel the host needs (it included)."""

    wheel: Path
    files: tuple[Path, ...]
    sha256: str  # the bzzz wheel's
    version: str

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bzzz" / "deploy"


def checkout_root() -> Path | None:
    """The source checkout this bzzz runs from (a pyproject.toml naming bzzz beside the
    package), or None when it runs from an installed wheel."""
    root = Path(bzzz.__file__).resolve().parent.parent
    project = root / "pyproject.toml"
    try:
        text = project.read_text()
    except OSError:
        return None
    return root if 'name = "bzzz"' in text else None


def _sources(root: Path) -> Iterator[Path]:
    yield root / "pyproject.toml"
    if (root / "README.md").exists():
        yield root / "README.md"
    for path in sorted((root / "bzzz").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _sources(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip(*args: str, what: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", *args],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"{what} failed: {one_line(exc)}") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:]
        raise UsageError(f"{what} failed: {errors[0] if errors else result.returncode}")


def build_wheel(root: Path, cache: Path) -> Path:
    """The bzzz wheel of the checkout at `root` (built in a copy, so the checkout gets
    no build folders), cached by the sources' hash."""
    folder = cache / "wheels" / source_hash(root)[:24]
    found = sorted(folder.glob("bzzz-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="bzzz-wheel-") as temp:
        source = Path(temp, "src")
        for path in _sources(root):
            target = source / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        out = Path(temp, "out")
        _pip("wheel", "--no-deps", "-q", "-w", str(out), str(source), what="building the wheel")
        built = sorted(out.glob("bzzz-*.whl"))
        if not built:
            raise UsageError("building the wheel made no bzzz-*.whl")
        _publish(out, folder)
        _prune(folder.parent, keep=KEEP_WHEELS)
    return sorted(folder.glob("bzzz-*.whl"))[0]


def _prune(wheels: Path, keep: int) -> None:
    """Remove all but the `keep` newest wheels built (each source change makes one)."""
    built = sorted(wheels.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in built[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _publish(built: Path, folder: Path) -> None:
    """Move a finished folder into the cache in one rename (a racing builder's is kept)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(built, folder)
    except OSError:
        if not folder.exists():
            raise


def _metadata(wheel: Path) -> tuple[str, list[str]]:
    """The wheel's version and its Requires-Dist lines."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    version, requires = "", []
    for line in text.splitlines():
        if line.startswith("Version:"):
            version = line.split(":", 1)[1].strip()
        elif line.startswith("Requires-Dist:"):
            requires.append(line.split(":", 1)[1].strip())
    return version, requires


def local_python_tag() -> str:
    return f"cp{sys.version_info[0]}{sys.version_info[1]}"


def wheelhouse(wheel: Path, python_tag: str, machine: str, cache: Path) -> list[Path]:
    """The wheels of the bzzz wheel's dependencies for a host with CPython `python_tag`
    (`cp311`) on `machine` (`x86_64`), cached. The same Python here: `pip wheel` (any
    source-only dependency is built here); another one: `pip download` of binary wheels
    for that Python and machine."""
    _, requires = _metadata(wheel)
    key = hashlib.sha256("\n".join([python_tag, machine, *sorted(requires)]).encode())
    folder = cache / "wheelhouse" / f"{python_tag}-{machine}-{key.hexdigest()[:20]}"
    if not (folder / ".complete").exists():
        with tempfile.TemporaryDirectory(prefix="bzzz-wheelhouse-", dir=_made(cache)) as temp:
            out = Path(temp, "wheels")
            if python_tag == local_python_tag() and machine == platform.machine():
                _pip("wheel", "-q", "-w", str(out), str(wheel), what="building the wheelhouse")
            else:
                version = f"{python_tag[2]}.{python_tag[3:]}"
                _pip(
                    "download",
                    "-q",
                    "--only-binary=:all:",
                    "--python-version",
                    version,
                    "--implementation",
                    "cp",
                    "--platform",
                    f"manylinux2014_{machine}",
                    "--platform",
                    f"manylinux_2_28_{machine}",
                    "-d",
                    str(out),
                    str(wheel),
                    what=f"downloading wheels for Python {version} on {machine}",
                )
            for built in out.glob("bzzz-*.whl"):
                built.unlink()  # the wheel itself is not cached here: it changes more often
            (out / ".complete").write_text("")
            _publish(out, folder)
    return sorted(p for p in folder.glob("*.whl"))


def _made(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def bundle(
    python_tag: str, machine: str, wheel: Path | None = None, cache: Path | None = None
) -> Bundle:
    """The wheel (given, or built from this checkout) and its wheelhouse."""
    cache = cache or cache_root()
    if wheel is None:
        root = checkout_root()
        if root is None:
            raise UsageError(
                "this bzzz is not run from a source checkout, so there is no wheel to "
                "build: give one with --wheel FILE"
            )
        wheel = build_wheel(root, cache)
    elif not wheel.is_file() or not wheel.name.startswith("bzzz-"):
        raise UsageError(f"--wheel {wheel}: not a bzzz wheel file")
    version, _ = _metadata(wheel)
    deps = wheelhouse(wheel, python_tag, machine, cache)
    return Bundle(wheel, (wheel, *deps), file_sha256(wheel), version)
