"""Opening a user's input file: only a regular file, read no further than its kind's size cap
(checked before parsing), decoded as UTF-8; anything else is one error naming the file. A FIFO,
/dev/zero, a directory or a socket would otherwise hang the command or fill its memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import PdroofError

MiB = 2**20


def read_capped(path: str | Path, cap_bytes: int, what: str = "file") -> str:
    """The text of ``path``, a regular file of at most ``cap_bytes``; else one PdroofError."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except FileNotFoundError:
        raise PdroofError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise PdroofError(f"{name}: is a directory, not a {what}") from None
    except OSError as exc:
        raise PdroofError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device")
            raise PdroofError(f"{name}: is {kind}, not a regular {what}")
        if os.fstat(fd).st_size > cap_bytes:
            raise PdroofError(f"{name}: larger than {cap_bytes // MiB} MiB, the most a {what} may be")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read(cap_bytes + 1)  # a file that grew after the check is still bounded
    except OSError as exc:
        raise PdroofError(f"{name}: cannot read: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > cap_bytes:
        raise PdroofError(f"{name}: larger than {cap_bytes // MiB} MiB, the most a {what} may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PdroofError(f"{name}: not UTF-8 text") from None
