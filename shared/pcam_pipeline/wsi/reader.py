"""Reading whole-slide images (pyramidal tiled TIFF: generic .tif/.tiff and Aperio .svs). Pure: works on any
seekable binary file object, so a slide in S3 is read through ranged GETs of the tiles a caller needs.

tifffile parses the TIFF structure; tiles are decoded by `tile_decoding` (Pillow's JPEG decoder and its
bundled libtiff). Every declared size is checked before anything is decoded: the file is untrusted.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np
import tifffile
from numpy.typing import NDArray

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.ports import ByteFile
from pcam_pipeline.wsi.resolution import resolution_from_metadata
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS, SlideLimits, check_signature, pyramid_pages
from pcam_pipeline.wsi.tile_decoding import TileFormat, decode_tile


@dataclass(frozen=True)
class Level:
    """One resolution of the pyramid: its size and how many level-0 pixels one of its pixels spans."""

    width: int
    height: int
    downsample: float
    tile_width: int
    tile_height: int


class WholeSlide:
    """An open pyramidal TIFF: its levels, its resolution metadata and region reads with a tile cache.

    ``base_size`` is the (width, height) that level downsamples and tile coordinates refer to: the file's level 0,
    or the original slide's level 0 when the file is a vendor slide's staged copy holding only its coarser levels."""

    def __init__(
        self,
        fileobj: ByteFile,
        size: int,
        limits: SlideLimits = DEFAULT_SLIDE_LIMITS,
        base_size: tuple[int, int] | None = None,
    ):
        self._limits = limits
        check_signature(fileobj, size)
        try:
            self._tiff = tifffile.TiffFile(cast(IO[bytes], fileobj))  # it reads any seekable binary file
            # Tags of the wrong type (a width stored as text, an unknown photometric code) fail in here too.
            self._pyramid = pyramid_pages(self._tiff, limits, size)
            self.width, self.height = base_size or (self._pyramid[0].imagewidth, self._pyramid[0].imagelength)
            self.levels = [
                Level(p.imagewidth, p.imagelength, self.width / p.imagewidth, p.tilewidth, p.tilelength)
                for p in self._pyramid
            ]
            self.resolution = resolution_from_metadata(self._pyramid[0])
            self._formats = [TileFormat.of(p) for p in self._pyramid]
        except InvalidInput:
            raise
        except Exception as exc:  # tifffile reports a damaged structure with many exception types
            problem = "the TIFF structure cannot be read (damaged or truncated)"
            raise InvalidInput(problem, "a readable TIFF", f"{type(exc).__name__}: {exc}") from exc
        self._cache: OrderedDict[tuple[int, int], NDArray[Any]] = OrderedDict()
        self._cached_bytes = 0
        self._file = fileobj

    def close(self) -> None:
        self._tiff.close()

    def __enter__(self) -> WholeSlide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ pixels
    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> NDArray[Any]:
        """RGB pixels of ``level`` in [x, x + width) x [y, y + height); outside the image is white."""
        page = self._pyramid[level]
        region = np.full((height, width, 3), 255, np.uint8)
        tw, th = page.tilewidth, page.tilelength
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, page.imagewidth), min(y + height, page.imagelength)
        if x0 >= x1 or y0 >= y1:
            return region
        columns = math.ceil(page.imagewidth / tw)
        for row in range(y0 // th, (y1 - 1) // th + 1):
            for column in range(x0 // tw, (x1 - 1) // tw + 1):
                tile = self._tile(level, row * columns + column)
                tx, ty = column * tw, row * th
                sx0, sy0 = max(x0, tx), max(y0, ty)
                sx1, sy1 = min(x1, tx + tw), min(y1, ty + th)
                region[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = tile[sy0 - ty : sy1 - ty, sx0 - tx : sx1 - tx]
        return region

    def read_level(self, level: int) -> NDArray[Any]:
        return self.read_region(level, 0, 0, self.levels[level].width, self.levels[level].height)

    def _tile(self, level: int, index: int) -> NDArray[Any]:
        key = (level, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        tile = self._decode(level, index)
        self._cache[key] = tile
        self._cached_bytes += tile.nbytes
        while self._cached_bytes > self._limits.cache_bytes and len(self._cache) > 1:
            self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return tile

    def _decode(self, level: int, index: int) -> NDArray[Any]:
        page = self._pyramid[level]
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        where = f"tile {index} of level {level}"
        if count == 0:  # a tile never written: background
            return np.full((page.tilelength, page.tilewidth, 3), 255, np.uint8)
        if count > self._limits.max_tile_bytes:
            limit = f"at most {self._limits.max_tile_bytes >> 20} MiB"
            raise InvalidInput(f"{where} is too large", limit, f"{count:,} bytes")
        self._file.seek(offset)
        data = self._file.read(count)
        if len(data) != count:
            problem = f"{where} lies past the end of the file (truncated?)"
            raise InvalidInput(problem, f"{count:,} bytes", f"{len(data):,}")
        try:
            return decode_tile(data, self._formats[level])
        except InvalidInput:
            raise
        except Exception as exc:  # Pillow and libtiff name a corrupt stream in several ways
            raise InvalidInput(f"{where} cannot be decoded (the file is damaged)", "a readable tile", str(exc)) from exc
