"""Write outputs to a temporary sibling and rename into place, so an interrupted run leaves
nothing half-written where DVC (or a user) would take it for finished."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from csxa_data.errors import CsxaError


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike, *, directory: bool = False, owns: Iterable[str] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    On any exception the temporary path is removed and ``target`` is left as it was. A folder
    ``target`` given ``owns`` (see :func:`check_replaceable`) is only ever replaced if it holds
    nothing else.
    """
    target = Path(target)
    if owns is not None:
        check_replaceable(target, owns)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    prefix = f"{_temporary_prefix(target)}{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            os.chmod(tmp, 0o755)
            if owns is not None:  # again: something may have been put there while the work ran
                check_replaceable(target, owns)
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(tmp, target)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings ``.NAME.tmp-PID-*`` that a killed run left beside ``target``
    (their process is gone); a live process's are left alone. Returns what was removed."""
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.glob(f"{glob.escape(_temporary_prefix(target))}*"):
        owner = path.name[len(_temporary_prefix(target)) :].split("-", 1)[0]
        if owner.isascii() and owner.isdigit() and _alive(int(owner)) and int(owner) != os.getpid():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def check_replaceable(target: str | os.PathLike, owns: Iterable[str]) -> None:
    """Refuse, with one line, to replace an existing ``target`` folder that holds anything but what
    the command writes into it (``owns``: glob patterns of entry names): the folder is replaced
    whole, and an ``--out`` mistyped as the release, a home folder or ``.`` must not be wiped."""

    target = Path(target)
    if not os.path.lexists(target):
        return
    if target.is_symlink() or not target.is_dir():
        raise CsxaError(
            "exists and is not a folder; the output is a folder written whole in its place, "
            "so it is left alone; nothing was done",
            path=target,
        )
    owns = tuple(owns)
    foreign = sorted(
        entry.name
        for entry in target.iterdir()
        if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in owns)
    )
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise CsxaError(
            f"holds {shown}, which this command does not write; the output folder is replaced whole, "
            f"so it is left alone: give an empty or new folder; nothing was done",
            path=target,
        )


def check_writable(target: str | os.PathLike, owns: Iterable[str] | None = None) -> None:
    """Refuse early, with one line, if ``target`` (a file or folder to be written) cannot be created
    or replaced: a read-only folder should not be found out only after all the work. With ``owns``,
    ``target`` is a folder replaced whole: see :func:`check_replaceable`."""

    target = Path(target)
    if owns is not None:
        check_replaceable(target, owns)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f"{_temporary_prefix(target)}{os.getpid()}-probe-", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CsxaError(f"cannot write the output here ({exc.strerror}); nothing was done", path=target) from None


def write_files_atomic(folder: str | os.PathLike, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write several files of ``folder`` together: each ``writers[name](path)`` writes its file to a
    temporary sibling, and only when all have been written are they renamed into place. A writer
    that fails (a full disk, a bad figure) leaves every file as it was, so a report is not left half
    old; a write error is one ``CsxaError`` naming the file. A folder in a file's place is refused
    before any write. (A rename failing part-way, which that check leaves to races and odd file
    systems, or a kill between the renames, would leave the files renamed before it.)"""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in writers:  # a rename onto a folder would fail after others were renamed
        if (folder / name).is_dir():
            raise CsxaError("is a folder where this command writes a file; nothing was replaced", path=folder / name)
    with contextlib.ExitStack() as stack:
        temporaries = {name: stack.enter_context(atomic_path(folder / name)) for name in writers}
        for name, write in writers.items():
            try:
                write(temporaries[name])
            except OSError as exc:  # a full disk: a write error names no file, or names the temporary one
                raise CsxaError(
                    f"cannot write it ({exc.strerror or exc}); none of {', '.join(writers)} was replaced",
                    path=folder / name,
                ) from None


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` through a temporary file."""
    write_bytes_atomic(target, text.encode("utf-8"))
