"""Decompressing a gzip stream as it is read, with a bound on what it may inflate to (a decompression bomb is
refused with InvalidInput, as are an empty, truncated or corrupt file)."""

from __future__ import annotations

import io
import zlib
from typing import Any

from pcam_pipeline.core.errors import InvalidInput


class GunzipStream(io.RawIOBase):
    """Decompresses a gzip body as it is read, holding at most one chunk in and one out."""

    def __init__(self, body: Any, chunk_size: int = 8 << 20, max_bytes: int | None = None) -> None:
        super().__init__()
        self._body, self._chunk_size, self._max_bytes = body, chunk_size, max_bytes
        self._inflated = 0
        self._inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        self._buffer = b""
        self._tail = b""
        self._compressed_seen = False

    def readable(self) -> bool:
        return True

    def _body_size(self) -> str:
        size = getattr(self._body, "_content_length", None)
        return f"{int(size):,}-byte" if size is not None else "smaller"

    def _refill(self) -> None:
        while not self._buffer and not self._inflater.eof:
            data = self._tail or self._body.read(self._chunk_size)
            if not data:
                if not self._compressed_seen:
                    raise InvalidInput("the file is empty (0 bytes)", "gzip-compressed HDF5")
                raise InvalidInput(
                    "the .gz file is truncated (incomplete upload?)",
                    "a complete gzip stream",
                    "the stream ends before its end marker",
                )
            self._compressed_seen = True
            try:
                self._buffer = self._inflater.decompress(data, self._chunk_size)
            except zlib.error as exc:
                raise InvalidInput("the file is not a valid .gz file", "gzip-compressed HDF5", str(exc)) from exc
            self._tail = self._inflater.unconsumed_tail
            self._inflated += len(self._buffer)
            if self._max_bytes is not None and self._inflated > self._max_bytes:
                raise InvalidInput(
                    "the .gz file inflates past the limit (a decompression bomb?)",
                    f"at most {self._max_bytes / (1 << 30):g} GB uncompressed (the MaxUncompressedGB setting)",
                    f"more than that from a {self._body_size()} file",
                )

    def readinto(self, buffer: Any) -> int:  # a writable buffer (collections.abc.Buffer)
        self._refill()
        view = memoryview(buffer).cast("B")
        take = min(len(view), len(self._buffer))
        view[:take] = self._buffer[:take]
        self._buffer = self._buffer[take:]
        return take
