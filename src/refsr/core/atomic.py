"""Atomic outputs: write to a temporary sibling, rename into place only on success.

:func:`check_writable` is the pre-flight every command that writes runs *before* its work:
the output is not a folder (or not a file, for a folder output), has a supported extension,
and its folder can be written. A fault that still happens while writing (a full disk) is
reported by :func:`atomic_path` as one line naming the output, not its temporary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from refsr.core.errors import RefsrError, os_reason


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (the folder a write would create under)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike, suffixes: Iterable[str] | None = None,
                   folder: bool = False) -> Path:
    """Raise a one-line :class:`RefsrError` unless ``path`` can be written as an output.

    A file output must not be a folder or a special file, and its extension (any case) must
    be one of ``suffixes`` when given; a folder output must not be a file. The folder that
    will hold the temporary (the nearest existing ancestor of the output's parent) must be a
    folder in which a file can be created: that is tried (a hidden file, removed at once), so
    permissions, ACLs, read-only and immutable file systems all count. Nothing is created.
    """
    raw = str(path)
    if not raw.strip():
        raise RefsrError("output", "empty path")
    path = Path(raw)
    if folder:
        if path.exists() and not path.is_dir():
            raise RefsrError(path, "exists and is not a folder (expected an output folder)")
    else:
        if path.is_dir():
            raise RefsrError(path, "is a folder, expected an output file name")
        if path.exists() and not path.is_file():
            raise RefsrError(path, "exists and is not a regular file")
        if suffixes is not None:
            allowed = tuple(s.lower() for s in suffixes)
            if path.suffix.lower() not in allowed:
                got = f"extension {path.suffix!r}" if path.suffix else "no extension"
                raise RefsrError(path, f"unsupported output: {got}; use one of {', '.join(allowed)}")
    holder = _existing_ancestor(path.parent)
    if not holder.is_dir():
        raise RefsrError(holder, f"is not a folder, so {path} cannot be written")
    try:
        fd, probe = tempfile.mkstemp(prefix=".refsr-write-check.", dir=holder)
    except OSError as err:
        raise RefsrError(holder, f"cannot write in this folder ({os_reason(err)})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _write_error(path: Path, tmp: Path, err: OSError) -> RefsrError | None:
    """An OSError of writing ``tmp`` (or renaming it to ``path``) as one line naming ``path``."""
    if err.filename in (None, "") or os.path.abspath(str(err.filename)) == os.path.abspath(tmp):
        return RefsrError(path, f"cannot write ({os_reason(err)})")
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary keeps the final suffix so that writers choosing a format by
    extension (PIL, matplotlib, pandas) behave as for the real name. On any
    exception the temporary is removed and ``path`` is left untouched; an ``OSError`` of
    the temporary itself becomes a one-line :class:`RefsrError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                        dir=path.parent)
    except OSError as err:
        raise RefsrError(path, f"cannot write ({os_reason(err)})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the result the usual permissions
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        mapped = _write_error(path, tmp, err)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on success it becomes ``path``.

    An existing ``path`` is replaced as a whole. On failure nothing is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise RefsrError(path, f"cannot write ({os_reason(err)})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
