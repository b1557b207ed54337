"""Opening a user's input file: only a regular file, read no further than its kind's size cap
(checked before parsing), decoded as UTF-8; anything else is one error naming the file. A FIFO,
/dev/zero, a directory or a socket would otherwise hang the command or fill its memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import PdroofError

MiB = 2**20


class FileError(PdroofError):
    """A file that cannot be read as it is: ``what`` says why (callers that name a field too wrap it)."""

    def __init__(self, path: str | Path, what: str):
        self.path, self.what = str(path), what
        super().__init__(f"{path}: {what}")


def read_capped(path: str | Path, cap_bytes: int, what: str = "file") -> str:
    """The text of ``path``, a regular file of at most ``cap_bytes``; else one FileError."""
    too_large = f"larger than {cap_bytes // MiB} MiB, the most a {what} may be"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except FileNotFoundError:
        raise FileError(path, "file not found") from None
    except IsADirectoryError:
        raise FileError(path, f"is a directory, not a {what}") from None
    except OSError as exc:
        raise FileError(path, f"cannot read: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as f:  # closes the descriptor on every way out
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                        else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
                raise FileError(path, f"is {kind}, not a regular {what}")
            if st.st_size > cap_bytes:
                raise FileError(path, too_large)
            data = f.read(cap_bytes + 1)  # a file that grew after the check is still bounded
    except OSError as exc:
        raise FileError(path, f"cannot read: {exc.strerror}") from None
    if len(data) > cap_bytes:
        raise FileError(path, too_large)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark some editors write
    except UnicodeDecodeError:
        raise FileError(path, "not UTF-8 text") from None
