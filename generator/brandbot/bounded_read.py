"""Reading a file a brand supplies, bounded before a byte is read.

Brand files and a brand's own files (logo, favicon, CSS) come from whoever wrote the brand: a
FIFO would block a plain `open()` forever, a device would never end, a huge file would be read
whole. Both readers share this one careful read; each words its refusals for its own file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegularFile(Exception):
    """The path is a directory, FIFO, device or socket."""


class TooLarge(Exception):
    """The file holds more than the limit; `size` is its size, or None if it grew while read."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def read_regular_file(path: Path, limit: int, *, no_follow: bool = False) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; refusals before any byte is read.

    A non-regular file is refused on `stat` and again on the opened descriptor (O_NONBLOCK keeps a
    FIFO swapped in between from blocking the open); `no_follow` refuses a symlink swapped in after
    the caller resolved the path. OSError (not found, permission denied) reaches the caller.
    """
    if not stat.S_ISREG(path.stat().st_mode):
        raise NotRegularFile()
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if no_follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags), "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise NotRegularFile()
        if status.st_size > limit:
            raise TooLarge(status.st_size)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(None)
    return data
