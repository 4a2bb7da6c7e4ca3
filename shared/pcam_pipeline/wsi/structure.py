"""The structure of a whole-slide TIFF, checked before any pixel is read: the file is untrusted. Which pages
form the pyramid (level 0 and smaller tiled images of its shape, from the main chain or level 0's SubIFDs),
and for each level: tiled, a compression and predictor the pipeline decodes, 8-bit RGB, every tile listed,
inside the file and in bytes of its own, within the configured limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tifffile

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.ports import ByteFile
from pcam_pipeline.wsi.tile_decoding import HORIZONTAL_PREDICTOR, LIBTIFF_COMPRESSION, READABLE_COMPRESSION

TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# TIFF layouts that only OpenSlide's vendor drivers interpret (offsets, crops, tile maps in their own metadata).
VENDOR_LAYOUTS = {"ndpi": "Hamamatsu NDPI", "philips": "Philips TIFF", "scn": "Leica SCN", "bif": "Ventana BIF"}


class NeedsOpenSlide(InvalidInput):
    """The pipeline's own reader does not decode this slide; OpenSlide may (read once and staged, `wsi.vendor`)."""


@dataclass(frozen=True)
class SlideLimits:
    """What a dropped slide may declare before its pixels are read."""

    max_gigapixels: float = 25.0  # MaxSlideGigapixels, level 0; a Camelyon16 slide is up to ~22
    max_pages: int = 64
    max_tile_edge: int = 4096
    max_tile_bytes: int = 16 << 20
    cache_bytes: int = 192 << 20  # decoded tiles kept while a shard reads neighbouring patches
    # Slides OpenSlide reads (wsi.vendor) are copied to ephemeral storage: the file, or a .zip and what it holds.
    max_vendor_bytes: int = 20 << 30  # MaxVendorSlideGB
    # Larger vendor slides are staged by a SageMaker Processing job, not in the function (VendorSlideLambdaMaxGB).
    lambda_vendor_bytes: int = 3 << 30
    max_archive_files: int = 10_000
    openslide_cpu_seconds: int = 600
    # Pixels OpenSlide may decode to stage one slide (the level nearest the model's resolution): see
    # docs/architecture.md for the seconds per gigapixel measured.
    max_staging_gigapixels: float = 4.0
    # The child reading with OpenSlide: its address space stays under the ingest function's 1,769 MB (it peaks
    # under 200 MB: a region of 4096 x 512 pixels and OpenSlide's 32 MB tile cache).
    openslide_memory_bytes: int = 1 << 30


DEFAULT_SLIDE_LIMITS = SlideLimits()


def check_signature(fileobj: ByteFile, size: int) -> None:
    if size < 8:
        raise InvalidInput("the file is too short to be a TIFF", "a pyramidal TIFF, SVS or TIF", f"{size} bytes")
    fileobj.seek(0)
    head = fileobj.read(4)
    fileobj.seek(0)
    if head not in TIFF_SIGNATURES:
        raise InvalidInput("the file is not a TIFF (nor an SVS, which is a TIFF)", "a TIFF signature", repr(head))


def pyramid_pages(tiff: tifffile.TiffFile, limits: SlideLimits, size: int) -> list[tifffile.TiffPage]:
    """The pages of the pyramid, level 0 first, each checked; ``size`` is the file's, in bytes."""
    for flag, name in VENDOR_LAYOUTS.items():
        if getattr(tiff, f"is_{flag}"):
            raise NeedsOpenSlide(f"the slide is a {name} file", "a layout OpenSlide's vendor reader interprets", name)
    pages = _pages(tiff, limits)
    pages[1:1] = _subifd_levels(tiff, pages[0], limits)
    return _pyramid_of(pages, limits, size)


def _pages(tiff: tifffile.TiffFile, limits: SlideLimits) -> list[tifffile.TiffPage]:
    pages: list[tifffile.TiffPage] = []
    for index, page in enumerate(tiff.pages):
        if index >= limits.max_pages:
            raise InvalidInput("the file holds too many images", f"at most {limits.max_pages}", "more")
        if isinstance(page, tifffile.TiffPage):  # tifffile yields frames only when asked to
            pages.append(page)
    if not pages:
        raise InvalidInput("the TIFF holds no image", "a pyramid of tiled images")
    return pages


def _subifd_levels(tiff: tifffile.TiffFile, base: tifffile.TiffPage, limits: SlideLimits) -> list[tifffile.TiffPage]:
    """Levels kept in level 0's SubIFDs (OME-TIFF, vips --subifd) rather than in the main chain."""
    if not base.subifds:
        return []
    if len(base.subifds) >= limits.max_pages:
        raise InvalidInput("the file holds too many images", f"at most {limits.max_pages}", "more")
    return [level.keyframe for level in tiff.series[0].levels[1:]]


def _pyramid_of(pages: list[Any], limits: SlideLimits, size: int) -> list[tifffile.TiffPage]:
    """Level 0 and every smaller tiled image of the same shape (as OpenSlide reads generic TIFF and SVS);
    thumbnails, labels and macro pictures are stripped images and are left out. Level 0 alone is a slide
    too (an Aperio region export)."""
    base = pages[0]
    _check_page(base, 0, limits, size)
    if base.imagewidth * base.imagelength > limits.max_gigapixels * 1e9:
        raise InvalidInput(
            "the slide is too large for the configured limits",
            f"at most {limits.max_gigapixels:g} gigapixels at level 0 (the MaxSlideGigapixels setting)",
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
        _check_page(page, len(pyramid), limits, size)
        pyramid.append(page)
    _check_tiles_apart(pyramid)
    return pyramid


def _check_page(page: tifffile.TiffPage, level: int, limits: SlideLimits, size: int) -> None:
    where = f"level {level}"
    if not page.is_tiled:
        raise InvalidInput(
            "the slide is not tiled", "a tiled TIFF (scanners' SVS and pyramidal TIFF are)", f"{where} in strips"
        )
    compression = int(page.compression)
    if compression not in READABLE_COMPRESSION:
        raise NeedsOpenSlide(
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
            f"{page.samplesperpixel} samples of {page.bitspersample} bits, planar configuration {page.planarconfig}",
        )
    photometric = int(page.photometric)
    if photometric not in (2, 6) or (photometric == 6 and compression != 7):
        named = getattr(page.photometric, "name", f"code {page.photometric}")
        raise InvalidInput(f"{where} is not an RGB image", "RGB (or YCbCr inside JPEG)", named)
    edge = limits.max_tile_edge
    if not (0 < page.tilewidth <= edge and 0 < page.tilelength <= edge):
        raise InvalidInput(
            f"{where} has tiles of an unusable size", f"tiles of at most {edge} pixels a side",
            f"{page.tilewidth} x {page.tilelength}",
        )  # fmt: skip
    tiles = math.ceil(page.imagewidth / page.tilewidth) * math.ceil(page.imagelength / page.tilelength)
    if len(page.dataoffsets) != tiles or len(page.databytecounts) != tiles:
        raise InvalidInput(f"{where} does not list every tile", f"{tiles:,} tile offsets", f"{len(page.dataoffsets):,}")
    end = max(int(o) + int(c) for o, c in zip(page.dataoffsets, page.databytecounts, strict=True))
    if end > size:
        raise InvalidInput(
            f"the tiles of {where} run past the end of the file (truncated? an incomplete upload)",
            f"a file of at least {end:,} bytes",
            f"{size:,} bytes",
        )


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
