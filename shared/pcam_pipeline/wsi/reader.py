"""Reading whole-slide images (pyramidal tiled TIFF: generic .tif/.tiff and Aperio .svs). Pure: works on any
seekable binary file object, so a slide in S3 is read through ranged GETs of the tiles a caller needs.

tifffile parses the TIFF structure; tiles are decoded by `tile_decoding` (Pillow's JPEG decoder and its
bundled libtiff). Every declared size is checked before anything is decoded: the file is untrusted.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import tifffile

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.resolution import resolution_from_metadata
from pcam_pipeline.wsi.tile_decoding import (
    HORIZONTAL_PREDICTOR,
    LIBTIFF_COMPRESSION,
    READABLE_COMPRESSION,
    TileFormat,
    decode_tile,
)

TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class SlideLimits:
    """What a dropped slide may declare before its pixels are read."""

    max_gigapixels: float = 25.0  # MaxSlideGigapixels, level 0; a Camelyon16 slide is up to ~22
    max_pages: int = 64
    max_tile_edge: int = 4096
    max_tile_bytes: int = 16 << 20
    cache_bytes: int = 192 << 20  # decoded tiles kept while a shard reads neighbouring patches


DEFAULT_SLIDE_LIMITS = SlideLimits()


@dataclass(frozen=True)
class Level:
    """One resolution of the pyramid: its size and how many level-0 pixels one of its pixels spans."""

    width: int
    height: int
    downsample: float
    tile_width: int
    tile_height: int


def _check_tiles_apart(pyramid: list[tifffile.TiffPage]) -> None:
    """Each tile in bytes of its own. Entries sharing bytes let a small file declare a huge slide (54 KB declared
    988,036 tiles) and have the same bytes decoded again and again."""
    offsets = np.concatenate([np.asarray(page.dataoffsets, np.int64) for page in pyramid])
    counts = np.concatenate([np.asarray(page.databytecounts, np.int64) for page in pyramid])
    written = counts > 0  # a tile never written is background, and has no bytes to share
    order = np.argsort(offsets[written], kind="stable")
    starts, ends = offsets[written][order], (offsets + counts)[written][order]
    overlapping = int(np.count_nonzero(starts[1:] < np.maximum.accumulate(ends)[:-1]))
    if overlapping:
        raise InvalidInput(
            "tiles of the slide share or overlap their bytes (a file made to look larger than it is?)",
            "each tile stored in bytes of its own",
            f"{overlapping:,} of {len(starts):,} tiles start inside another tile's bytes",
        )


class WholeSlide:
    """An open pyramidal TIFF: its levels, its resolution metadata and region reads with a tile cache."""

    def __init__(self, fileobj: BinaryIO, size: int, limits: SlideLimits = DEFAULT_SLIDE_LIMITS):
        self._limits, self._size = limits, size
        if size < 8:
            raise InvalidInput("the file is too short to be a TIFF", "a pyramidal TIFF, SVS or TIF", f"{size} bytes")
        fileobj.seek(0)
        head = fileobj.read(4)
        fileobj.seek(0)
        if head not in TIFF_SIGNATURES:
            raise InvalidInput("the file is not a TIFF (nor an SVS, which is a TIFF)", "a TIFF signature", repr(head))
        try:
            self._tiff = tifffile.TiffFile(fileobj)
            pages = self._pages()
            pages[1:1] = self._subifd_levels(pages[0])
            # Tags of the wrong type (a width stored as text, an unknown photometric code) fail in here too.
            self._pyramid = self._pyramid_of(pages)
            base = self._pyramid[0]
            self.levels = [
                Level(p.imagewidth, p.imagelength, base.imagewidth / p.imagewidth, p.tilewidth, p.tilelength)
                for p in self._pyramid
            ]
            self.resolution = resolution_from_metadata(base)
            self._formats = [TileFormat.of(p) for p in self._pyramid]
        except InvalidInput:
            raise
        except Exception as exc:  # tifffile reports a damaged structure with many exception types
            problem = "the TIFF structure cannot be read (damaged or truncated)"
            raise InvalidInput(problem, "a readable TIFF", f"{type(exc).__name__}: {exc}") from exc
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._file = fileobj

    def close(self) -> None:
        self._tiff.close()

    def __enter__(self) -> WholeSlide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ structure
    def _pages(self) -> list[tifffile.TiffPage]:
        pages = []
        for index, page in enumerate(self._tiff.pages):
            if index >= self._limits.max_pages:
                raise InvalidInput("the file holds too many images", f"at most {self._limits.max_pages}", "more")
            pages.append(page)
        if not pages:
            raise InvalidInput("the TIFF holds no image", "a pyramid of tiled images")
        return pages

    def _subifd_levels(self, base: tifffile.TiffPage) -> list[tifffile.TiffPage]:
        """Levels kept in level 0's SubIFDs (OME-TIFF, vips --subifd) rather than in the main chain."""
        if not base.subifds:
            return []
        if len(base.subifds) >= self._limits.max_pages:
            raise InvalidInput("the file holds too many images", f"at most {self._limits.max_pages}", "more")
        return [level.keyframe for level in self._tiff.series[0].levels[1:]]

    def _pyramid_of(self, pages: list) -> list[tifffile.TiffPage]:
        """Level 0 and every smaller tiled image of the same shape (as OpenSlide reads generic TIFF and SVS);
        thumbnails, labels and macro pictures are stripped images and are left out. Level 0 alone is a slide
        too (an Aperio region export)."""
        base = pages[0]
        self._check_page(base, 0)
        if base.imagewidth * base.imagelength > self._limits.max_gigapixels * 1e9:
            raise InvalidInput(
                "the slide is too large for the configured limits",
                f"at most {self._limits.max_gigapixels:g} gigapixels at level 0 (the MaxSlideGigapixels setting)",
                f"{base.imagewidth:,} x {base.imagelength:,} pixels",
            )
        pyramid = [base]
        for page in pages[1:]:
            previous = pyramid[-1]
            if not page.is_tiled or page.imagewidth >= previous.imagewidth:
                continue
            if abs(page.imagewidth / page.imagelength - base.imagewidth / base.imagelength) > 0.02 * (
                base.imagewidth / base.imagelength
            ):
                continue
            self._check_page(page, len(pyramid))
            pyramid.append(page)
        _check_tiles_apart(pyramid)
        return pyramid

    def _check_page(self, page: tifffile.TiffPage, level: int) -> None:
        where = f"level {level}"
        if not page.is_tiled:
            raise InvalidInput(
                "the slide is not tiled", "a tiled TIFF (scanners' SVS and pyramidal TIFF are)", f"{where} in strips"
            )
        compression = int(page.compression)
        if compression not in READABLE_COMPRESSION:
            raise InvalidInput(
                f"{where} is compressed in a way the pipeline cannot decode",
                "JPEG, LZW, deflate, PackBits or none (convert first: vips tiffsave slide.svs slide.tif --tile "
                "--pyramid --compression jpeg --Q 90)",
                f"compression {compression} ({getattr(page.compression, 'name', 'unknown')})",
            )
        if int(page.predictor) not in (1, HORIZONTAL_PREDICTOR) or (
            int(page.predictor) == HORIZONTAL_PREDICTOR and compression not in LIBTIFF_COMPRESSION
        ):
            raise InvalidInput(
                f"{where} uses a predictor the pipeline cannot undo",
                "no predictor, or the horizontal one (2) with LZW or deflate",
                f"predictor {int(page.predictor)} with compression {compression}",
            )
        if page.bitspersample != 8 or page.samplesperpixel not in (3, 4) or page.planarconfig != 1:
            raise InvalidInput(
                f"{where} is not 8-bit RGB",
                "8-bit RGB pixels, stored together",
                f"{page.samplesperpixel} samples of {page.bitspersample} bits, planar configuration "
                f"{page.planarconfig}",
            )
        photometric = int(page.photometric)
        if photometric not in (2, 6) or (photometric == 6 and compression != 7):
            named = getattr(page.photometric, "name", f"code {page.photometric}")
            raise InvalidInput(f"{where} is not an RGB image", "RGB (or YCbCr inside JPEG)", named)
        edge = self._limits.max_tile_edge
        if not (0 < page.tilewidth <= edge and 0 < page.tilelength <= edge):
            raise InvalidInput(
                f"{where} has tiles of an unusable size", f"tiles of at most {edge} pixels a side",
                f"{page.tilewidth} x {page.tilelength}",
            )  # fmt: skip
        tiles = math.ceil(page.imagewidth / page.tilewidth) * math.ceil(page.imagelength / page.tilelength)
        if len(page.dataoffsets) != tiles or len(page.databytecounts) != tiles:
            raise InvalidInput(
                f"{where} does not list every tile", f"{tiles:,} tile offsets", f"{len(page.dataoffsets):,}"
            )
        end = max(int(o) + int(c) for o, c in zip(page.dataoffsets, page.databytecounts, strict=True))
        if end > self._size:
            raise InvalidInput(
                f"the tiles of {where} run past the end of the file (truncated? an incomplete upload)",
                f"a file of at least {end:,} bytes",
                f"{self._size:,} bytes",
            )

    # ------------------------------------------------------------------ pixels
    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
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

    def read_level(self, level: int) -> np.ndarray:
        return self.read_region(level, 0, 0, self.levels[level].width, self.levels[level].height)

    def _tile(self, level: int, index: int) -> np.ndarray:
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

    def _decode(self, level: int, index: int) -> np.ndarray:
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
