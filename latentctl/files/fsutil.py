"""Files written so that nothing is lost: atomic replacement, ordinary permissions, OS errors in
words, names shown unambiguously, and the temporary files a killed writer left behind removed.

A crash, Ctrl-C or full disk mid-write leaves the previous file intact (``atomic_writer``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def _default_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would give: an existing file keeps its own, a new one
    gets 0o666 less the umask. (mkstemp makes 0600 files, which would make a checkpoint or PNG
    meant for sharing unreadable to the user's group whatever their umask says.)"""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    # The umask can only be read by setting it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_writer(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once it is completely written and synced.

    The temporary file lives in the destination folder so that the final ``os.replace`` is a rename
    on one file system (atomic), never a copy. With ``overwrite=False`` an existing ``path`` raises
    ``FileExistsError`` before anything is written. The result has the permissions ``open()`` would
    give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(path)
    mode = _default_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        if os.name == "posix":
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if not overwrite and path.exists():
            raise FileExistsError(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    with atomic_writer(path, overwrite=overwrite) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str, *, overwrite: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def remove_stale_temps(folder: Path, stem: str, *, older_than_s: float = 0.0) -> list[Path]:
    """Delete ``folder/.{stem}.*.tmp``: what ``atomic_writer`` leaves when its process is killed
    (SIGKILL, power loss) between creating the temporary file and renaming it. Only the caller's
    own file's temporaries are touched, and only those older than ``older_than_s``, so a writer
    still running in another process keeps its file."""
    removed = []
    now = time.time()
    try:
        candidates = list(Path(folder).glob(f".{stem}.*{TEMP_SUFFIX}"))
    except OSError:
        return removed
    for p in candidates:
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                removed.append(p)
    return removed


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- saying what went wrong ----------------------------------------------------------------------

_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error (the disk may be failing)",
}
_FIXES = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space",
    errno.EROFS: "choose a writable folder (--out or --workspace)",
    errno.EACCES: "check its permissions or choose another folder",
    errno.EPERM: "check its permissions or choose another folder",
    errno.ENOTDIR: "choose a folder path",
}


def os_error_cause(err: OSError) -> str:
    """What an OSError means, in words; numpy's short writes (no errno) count as a full disk."""
    if err.errno in _CAUSES:
        return _CAUSES[err.errno]
    text = str(err)
    if "requested and" in text and "written" in text:  # numpy's tofile/save on a full disk
        return _CAUSES[errno.ENOSPC]
    return err.strerror or text or type(err).__name__


def is_no_space(err: OSError) -> bool:
    return os_error_cause(err) in (_CAUSES[errno.ENOSPC], _CAUSES[errno.EDQUOT])


def describe_os_error(err: OSError, action: str = "", path: str | os.PathLike[str] | None = None) -> str:
    """One line: the path, what was being done, the cause and, where one is known, the fix."""
    where = path if path is not None else (err.filename or "")
    cause = os_error_cause(err)
    fix = _FIXES.get(err.errno) or ("free some space" if is_no_space(err) else "")
    parts = [f"{display_name(str(where))}: " if where else "", f"cannot {action}: " if action else "", cause]
    return "".join(parts) + (f"; {fix}" if fix else "")


def display_name(name: str) -> str:
    """A file name as one unambiguous printable line: undecodable bytes (kept by Python as
    surrogates) become ``\\xNN``, control characters such as a newline ``\\n``, and a backslash
    ``\\\\``; every other character, accents included, stays as it is."""
    out = []
    for ch in str(name):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif not ch.isprintable():
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def name_bytes(name: str) -> bytes:
    """A file name's bytes as the OS gave them (names that are not UTF-8 included)."""
    return os.fsencode(name) if os.name == "posix" else name.encode("utf-8", "surrogatepass")
