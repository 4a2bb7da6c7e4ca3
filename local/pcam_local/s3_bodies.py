"""Keeps the local S3's small object bodies on disk, so its memory does not grow with a dataset's patches.

moto keeps every object under 5 MB in memory (a SpooledTemporaryFile each): 8.5 KB resident per 3 KB
JPEG patch, 2.2 GB for the 262,144 patches of the PCam train split. Here each small body is appended to
one temporary file shared by the server (``BodyLog``) and the object keeps only where its bytes are
(``LoggedBody``, a file-like object with the operations moto uses); larger bodies stay in moto's own
temporary files. The log is never compacted: a local stack's objects live as long as the stack (a
versioned bucket keeps every version anyway) and the file goes with the process.

Each object's private ACL is also shared: moto builds one per object (half a kilobyte).
"""

from __future__ import annotations

import os
import tempfile
import threading

from moto.s3.models import FakeKey, get_canned_acl


class BodyLog:
    """One append-only temporary file holding many object bodies; reads and writes by offset."""

    def __init__(self):
        handle, path = tempfile.mkstemp(prefix="local-s3-bodies-")
        os.unlink(path)  # gone with the process
        self._fd = handle
        self._end = 0
        self._lock = threading.Lock()

    def append(self, data: bytes) -> int:
        with self._lock:
            offset, self._end = self._end, self._end + len(data)
        os.pwrite(self._fd, data, offset)
        return offset

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset) if length > 0 else b""


class LoggedBody:
    """One object's body in a ``BodyLog``: seek, tell, read, write, truncate and close, as moto uses them."""

    __slots__ = ("_log", "_offset", "_length", "_position")

    def __init__(self, log: BodyLog, data: bytes = b""):
        self._log, self._offset, self._length, self._position = log, 0, 0, 0
        self.write(data)

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = max(0, base + position)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._length - self._position)
        size = left if size is None or size < 0 else min(size, left)
        data = self._log.read(self._offset + self._position, size)
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        data = bytes(data)
        if not data:
            return 0
        # A body is rewritten whole at the log's end (moto writes once after a truncate).
        before = self._log.read(self._offset, min(self._position, self._length))
        before += b"\0" * (self._position - len(before))
        after = self._log.read(self._offset + self._position + len(data), self._length - self._position - len(data))
        whole = before + data + after
        self._offset, self._length = self._log.append(whole), len(whole)
        self._position += len(data)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        self._length = min(self._length, self._position if size is None else size)
        return self._length

    def close(self) -> None:
        pass


def install() -> None:
    log = BodyLog()
    private = get_canned_acl("private")
    create_key = FakeKey.__init__

    def create_key_with_logged_body(self, *args, **kwargs) -> None:
        create_key(self, *args, **kwargs)
        spooled = self._value_buffer
        if not getattr(spooled, "_rolled", True):  # still in memory: a small body
            self._value_buffer = LoggedBody(log, spooled._file.getvalue())
            spooled.close()
        self.acl = private  # what moto's FakeKey starts with; another ACL replaces it (set_acl), never edits it

    FakeKey.__init__ = create_key_with_logged_body
