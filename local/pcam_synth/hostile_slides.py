"""Whole-slide images built to stall the reader, as a security review found them, and the tile-level edits the
fuzzer (tests/fuzz.py) makes of any TIFF: a description's length and repetition, a JPEG tile's scans, tile
entries that share bytes. Each hostile slide must end at ingestion, quickly, quarantined with a reason."""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image


@dataclass(frozen=True)
class TileTable:
    """Where one tiled page's TileOffsets and TileByteCounts arrays sit in the file, and what they hold."""

    offsets_at: int
    counts_at: int
    item: str  # struct format of one entry, with the byte order
    offsets: list[int]
    counts: list[int]
    jpeg: bool


def tile_tables(data: bytes) -> list[TileTable]:
    tables = []
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        for page in tiff.pages:
            if not page.is_tiled or "TileOffsets" not in page.tags:
                continue
            offsets, counts = page.tags["TileOffsets"], page.tags["TileByteCounts"]
            if len(page.dataoffsets) < 2:  # a single entry sits inside its tag, not in an array
                continue
            item = tiff.byteorder + ("Q" if offsets.dtype == 16 else "I" if offsets.dtype == 4 else "H")
            count_item = tiff.byteorder + ("Q" if counts.dtype == 16 else "I" if counts.dtype == 4 else "H")
            if count_item != item:
                continue
            tables.append(TileTable(offsets.valueoffset, counts.valueoffset, item, list(page.dataoffsets),
                                    list(page.databytecounts), int(page.compression) == 7))  # fmt: skip
    return tables


def _set_entry(mutated: bytearray, table: TileTable, index: int, offset: int, count: int) -> None:
    size = struct.calcsize(table.item)
    struct.pack_into(table.item, mutated, table.offsets_at + index * size, offset)
    struct.pack_into(table.item, mutated, table.counts_at + index * size, count)


def repeat_scans(jpeg: bytes, times: int) -> bytes:
    """The JPEG with its last scan (from its SOS marker to the EOI) repeated: a progressive decoder makes
    another pass over every coefficient for each."""
    last_scan = jpeg.rfind(b"\xff\xda")
    scan = jpeg[last_scan:-2]
    return jpeg[:last_scan] + scan * times + b"\xff\xd9"


def progressive_tile(edge: int = 256, seed: int = 0) -> bytes:
    """A progressive JPEG of flat glass: its scans are a few dozen bytes each, so repeating them is cheap."""
    picture = np.full((edge, edge, 3), (200 + seed % 40, 190, 205), np.uint8)
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="JPEG", quality=90, progressive=True)
    return out.getvalue()


# ---------------------------------------------------------------------------------------- fuzz mutators
def mangle_description(data: bytes, rng: random.Random) -> bytes:
    """Point a page's ImageDescription at a long, repetitive text appended to the file (OME-XML and Aperio
    prefixes with their keys repeated, or runs of one character)."""
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        tags = [page.tags["ImageDescription"] for page in tiff.pages if "ImageDescription" in page.tags]
        byteorder, big = tiff.byteorder, tiff.is_bigtiff
    if not tags:
        return data
    tag = rng.choice(tags)
    unit = rng.choice(["<Pixels ", 'PhysicalSizeX="', "|MPP = ", "|", " ", "<OME", "="])
    prefix = rng.choice(["<OME><Image>", "Aperio Image Library v1\r\n", ""])
    text = (prefix + unit * rng.randint(1, 400_000 // len(unit))).encode() + b"\0"
    mutated = bytearray(data)
    count_format, offset_format = (f"{byteorder}Q", f"{byteorder}Q") if big else (f"{byteorder}I", f"{byteorder}I")
    struct.pack_into(count_format, mutated, tag.offset + 4, len(text))
    struct.pack_into(offset_format, mutated, tag.offset + 4 + struct.calcsize(count_format), len(mutated))
    return bytes(mutated + text)


def repeat_jpeg_scans(data: bytes, rng: random.Random) -> bytes:
    """Replace some JPEG tiles with a progressive tile whose last scan repeats up to 20,000 times."""
    tables = [t for t in tile_tables(data) if t.jpeg]
    if not tables:
        return data
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        table = rng.choice(tables)
        bomb = repeat_scans(progressive_tile(seed=rng.randrange(100)), rng.choice([2, 40, 2_000, 20_000]))
        _set_entry(mutated, table, rng.randrange(len(table.offsets)), len(mutated), len(bomb))
        mutated += bomb
    return bytes(mutated)


def alias_tiles(data: bytes, rng: random.Random) -> bytes:
    """Point tile entries at another tile's bytes, or into the middle of them."""
    tables = tile_tables(data)
    if not tables:
        return data
    mutated = bytearray(data)
    table = rng.choice(tables)
    source = rng.randrange(len(table.offsets))
    shift = rng.choice([0, 0, 1, table.counts[source] // 2])
    targets = range(len(table.offsets)) if rng.random() < 0.5 else rng.sample(range(len(table.offsets)), 1)
    for index in targets:
        if index != source:
            _set_entry(mutated, table, index, table.offsets[source] + shift, table.counts[source] - shift)
    return bytes(mutated)


TILE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "description length and repetition": mangle_description,
    "JPEG scans": repeat_jpeg_scans,
    "tile aliasing": alias_tiles,
}


# ---------------------------------------------------------------------------------------- the four slides
def _small_pyramid(tile_bytes: Callable[[int], bytes] | None = None, description: str | None = None) -> bytes:
    """A 512 x 512 JPEG pyramid (4 tiles, then 1) at 0.486 µm/px; ``tile_bytes(n)`` gives the n-th tile
    written, in order, instead of the encoder's."""
    from pcam_synth.whole_slides import jpeg_codec_for_tifffile

    jpeg_codec_for_tifffile(90)
    encode = tifffile.TIFF.COMPRESSORS._codecs[7]
    written = iter(range(10**6))
    if tile_bytes is not None:
        tifffile.TIFF.COMPRESSORS._codecs[7] = lambda data, *a, **k: tile_bytes(next(written))
    try:
        out = io.BytesIO()
        resolution = {"resolution": (1e4 / 0.486,) * 2, "resolutionunit": "CENTIMETER"}
        picture = np.full((512, 512, 3), 200, np.uint8)
        with tifffile.TiffWriter(out) as writer:
            for level, edge in enumerate((512, 256)):
                writer.write(picture[:edge, :edge], tile=(256, 256), compression="jpeg", photometric="rgb",
                             metadata=None, description=description if level == 0 else None,
                             subfiletype=1 if level else 0, **resolution)  # fmt: skip
        return out.getvalue()
    finally:
        tifffile.TIFF.COMPRESSORS._codecs[7] = encode


def ome_description_slide(size: int = 1 << 20) -> bytes:
    """1 MB of ``<Pixels `` that never closes: quadratic work for a lazy pattern across the text."""
    return _small_pyramid(description="<OME><Image>" + "<Pixels " * (size // 8))


def progressive_scans_slide(scans: int = 18_000) -> bytes:
    """Every tile a progressive JPEG repeating its last scan, within the bytes a tile may hold."""
    bomb = repeat_scans(progressive_tile(), scans)
    return _small_pyramid(lambda _: bomb)


def aliased_tiles_slide() -> bytes:
    """Every tile entry of level 0 pointing at the bytes of its first tile."""
    data = _small_pyramid()
    mutated = bytearray(data)
    table = tile_tables(data)[0]
    for index in range(1, len(table.offsets)):
        _set_entry(mutated, table, index, table.offsets[0], table.counts[0])
    return bytes(mutated)


def oversized_tile_slide() -> bytes:
    """256 x 256 tiles of 1.1 MB each (raw pixels are 196 KB): application segments padding a small JPEG."""
    tile = progressive_tile()
    padding = (b"\xff\xe9" + struct.pack(">H", 65_000) + b"\0" * 64_998) * 17
    return _small_pyramid(lambda _: tile[:2] + padding + tile[2:])


# name: (the slide's bytes, the problem a lab reads)
HOSTILE_SLIDES = {
    "OME description": (ome_description_slide, "no tissue was found on the slide"),  # read at its TIFF tags' µm/px
    "progressive JPEG scans": (progressive_scans_slide, "a JPEG tile repeats its scans"),
    "aliased tiles": (aliased_tiles_slide, "tiles of the slide share or overlap their bytes"),
    "oversized tile": (oversized_tile_slide, "a tile holds far more bytes than its pixels need"),
}
