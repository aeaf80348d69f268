"""File I/O at the edges: atomic writes of JSON, CSV, YAML and arrays.

Every output is built under a hidden temporary name beside its final path
(``.<name>.<pid>.<random>.tmp``) and renamed into place only when complete,
so an interrupted stage never leaves a half-written file or directory that
looks complete, and never harms the previous output:

- an exception, Ctrl-C (SIGINT) or, inside :func:`terminate_cleanly`, SIGTERM
  removes the temporary file on the way out;
- SIGKILL cannot be caught: its leftover carries the dead process id, and the
  next atomic write of the same path removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

_DEFERRED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # held back during a swap
_LEFTOVER = re.compile(r"([0-9]+)\.[^.]+\.tmp(?:\.old)?")  # <pid>.<random>.tmp[.old]


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` (143 = 128 + SIGTERM).

    Python's default SIGTERM kills the process on the spot; turned into an
    exception, it unwinds the stack instead, so every ``finally`` and context
    manager (temporary files, worker pools) cleans up. A second SIGTERM during
    that cleanup kills at once. For stage scripts only: the library never
    installs signal handlers.
    """
    def handler(signum: int, frame: object) -> None:
        signal.signal(signum, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (killed, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (not Linux): ask the kernel
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(path: Path) -> list[Path]:
    """Remove temporaries of ``path`` left by killed processes (``.<name>.<pid>.*.tmp*``).

    Those of live processes (a concurrent writer) are left alone. Returns what was removed.
    """
    removed = []
    prefix = f".{path.name}."
    for leftover in path.parent.glob(f".{glob_escape(path.name)}.*.tmp*"):
        match = _LEFTOVER.fullmatch(leftover.name[len(prefix):])  # not a sibling's, e.g. "x.1"
        if not match or int(match[1]) == os.getpid() or _pid_alive(int(match[1])):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A stage killed midway therefore never leaves a half-written file that looks
    complete: either the old file (or none) is there, or the whole new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the usual umask-based mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a sibling temporary directory; it replaces ``path`` only on success.

    A killed stage leaves at most a hidden ``.<name>.<pid>.*.tmp`` directory,
    never a complete-looking output; the previous ``path`` stays whole until the
    swap, two renames during which SIGINT, SIGTERM and SIGHUP are held back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 directories
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
        try:
            if path.exists():
                os.rename(path, old)
            os.rename(tmp, path)
        finally:
            if old.exists() and not path.exists():  # the second rename failed: put it back
                os.rename(old, path)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a held-back signal acts here
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a table as UTF-8 CSV without the index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Write an array as .npy (never pickled objects), atomically."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Read an .npy file, refusing pickled object arrays.

    Raises:
        ValueError: naming the file, when it holds pickled objects (loading them could run
            code) or is not an .npy array at all.
    """
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: refused to load: not a plain .npy array ({err}); pickled "
                         f"objects are never loaded") from None
