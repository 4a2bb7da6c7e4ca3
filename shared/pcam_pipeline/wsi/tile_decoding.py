"""Decoding one stored tile of a TIFF to RGB pixels. Pure: bytes in, a numpy array out.

JPEG tiles go to Pillow's JPEG decoder. LZW, deflate and PackBits tiles, with or without the horizontal
predictor, go to the libtiff bundled inside Pillow (the library OpenSlide itself reads generic TIFF with): the
tile is wrapped in a one-tile TIFF that carries the level's tags, so libtiff applies the predictor and
decodes exactly as it would in the whole file. No codec is written here, and nothing new enters the Lambda
layer (imagecodecs, which tifffile would use, is about 80 MB; see docs/architecture.md).

The tile is untrusted: its size, its JPEG scans and its bytes per pixel are checked before it is decoded,
and no decoder writes more than the tile's own pixels.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile

from pcam_pipeline.core.errors import InvalidInput

JPEG = 7
NONE = 1
# TIFF compression codes libtiff (in Pillow) decodes for us, with their names.
LIBTIFF_COMPRESSION = {5: "LZW", 8: "deflate", 32946: "deflate", 32773: "PackBits"}
READABLE_COMPRESSION = {NONE: "none", JPEG: "JPEG", **LIBTIFF_COMPRESSION}
HORIZONTAL_PREDICTOR = 2
# A progressive JPEG has about 10 scans (libjpeg's default script); each scan is another pass over every
# coefficient, so a file repeating scans can make one tile cost minutes. 18,000 scans took 28.5 s.
MAX_JPEG_SCANS = 32
START_OF_SCAN = b"\xff\xda"  # 0xFF inside entropy-coded data is always followed by 0x00, so this is a marker


@dataclass(frozen=True)
class TileFormat:
    """How one level's tiles are stored: everything a decoder needs besides a tile's bytes."""

    width: int
    height: int
    samples: int = 3
    compression: int = NONE
    photometric: int = 2  # 2 RGB, 6 YCbCr (inside JPEG only)
    predictor: int = 1
    jpeg_tables: bytes = b""
    extra_samples: tuple[int, ...] = ()

    @classmethod
    def of(cls, page: Any) -> TileFormat:  # a tifffile TiffPage
        """The format of a tifffile page's tiles."""
        extra = page.tags.get("ExtraSamples")
        return cls(
            width=page.tilewidth,
            height=page.tilelength,
            samples=page.samplesperpixel,
            compression=int(page.compression),
            photometric=int(page.photometric),
            predictor=int(page.predictor),
            jpeg_tables=bytes(page.jpegtables or b""),
            extra_samples=tuple(int(v) for v in _values(extra.value)) if extra else (),
        )

    @property
    def pixel_bytes(self) -> int:
        return self.width * self.height * self.samples

    @property
    def max_stored_bytes(self) -> int:
        """The most bytes a real encoder needs for this many pixels (LZW expands noise by at most 1.5x; JPEG at
        quality 100 by about 1.2x), with room for markers: past this the tile is made to cost work, not to
        hold pixels."""
        return 4 * self.pixel_bytes + (64 << 10)


def _values(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def decode_tile(data: bytes, tile: TileFormat) -> NDArray[Any]:
    """One stored tile to a (height, width, 3) uint8 RGB array."""
    if len(data) > tile.max_stored_bytes:
        raise InvalidInput(
            "a tile holds far more bytes than its pixels need (made to be slow to decode?)",
            f"at most {tile.max_stored_bytes:,} bytes for {tile.width} x {tile.height} pixels",
            f"{len(data):,} bytes",
        )
    if tile.compression == JPEG:
        return _decode_jpeg(data, tile)
    if tile.compression == NONE:
        if len(data) < tile.pixel_bytes:
            problem = "a tile holds fewer pixels than declared"
            raise InvalidInput(problem, f"{tile.pixel_bytes:,} bytes", f"{len(data):,}")
        pixels = np.frombuffer(data[: tile.pixel_bytes], np.uint8).reshape(tile.height, tile.width, tile.samples)
        return pixels[..., :3]
    if tile.compression in LIBTIFF_COMPRESSION:
        with Image.open(io.BytesIO(one_tile_tiff(data, tile)), formats=["TIFF"]) as image:
            _check_size(image, tile)
            return np.asarray(image.convert("RGB"))
    named = READABLE_COMPRESSION.get(tile.compression, f"compression {tile.compression}")
    raise InvalidInput(
        "a tile is compressed in a way the pipeline cannot decode", "JPEG, LZW, deflate, PackBits or none", named
    )


def _decode_jpeg(data: bytes, tile: TileFormat) -> NDArray[Any]:
    """A JPEG tile of an RGB image without a JFIF or Adobe marker holds RGB, not YCbCr (Aperio SVS does this;
    tifffile and OpenSlide decode it the same way): the decoder is told so, or the colours would come out
    wrong."""
    scans = data.count(START_OF_SCAN)
    if scans > MAX_JPEG_SCANS:
        raise InvalidInput(
            "a JPEG tile repeats its scans (made to be slow to decode?)",
            f"at most {MAX_JPEG_SCANS} scans",
            f"{scans:,} scans",
        )
    if tile.jpeg_tables:  # abbreviated stream: the tables' markers, then the tile's after its SOI
        data = tile.jpeg_tables[:-2] + data[2:]
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        _check_size(image, tile, "a JPEG tile has the wrong size")
        if tile.photometric == 2 and not {"jfif", "adobe"} & image.info.keys() and image.mode == "RGB":
            decoder, extent, offset, (rawmode, _) = image.tile[0]
            image.tile = [ImageFile._Tile(decoder, extent, offset, (rawmode, "RGB"))]
        return np.asarray(image.convert("RGB"))


def _check_size(image: Image.Image, tile: TileFormat, problem: str = "a tile has the wrong size") -> None:
    if image.size != (tile.width, tile.height):
        raise InvalidInput(problem, f"{tile.width} x {tile.height}", f"{image.size[0]} x {image.size[1]}")


_SHORT, _LONG = 3, 4


def one_tile_tiff(data: bytes, tile: TileFormat) -> bytes:
    """A little-endian TIFF whose only image is this one tile, with the tags that say how it is stored. 8-bit
    samples are bytes, so a compressed stream reads the same in either byte order."""
    entries = [
        (256, _LONG, [tile.width]),  # ImageWidth
        (257, _LONG, [tile.height]),  # ImageLength
        (258, _SHORT, [8] * tile.samples),  # BitsPerSample
        (259, _SHORT, [tile.compression]),
        (262, _SHORT, [tile.photometric]),
        (277, _SHORT, [tile.samples]),  # SamplesPerPixel
        (284, _SHORT, [1]),  # PlanarConfiguration: contiguous
        (317, _SHORT, [tile.predictor]),
        (322, _LONG, [tile.width]),  # TileWidth
        (323, _LONG, [tile.height]),  # TileLength
        (324, _LONG, [0]),  # TileOffsets: patched below, once the layout is known
        (325, _LONG, [len(data)]),  # TileByteCounts
    ]
    if tile.extra_samples:
        entries.append((338, _SHORT, list(tile.extra_samples)))
    header_and_directory = 8 + 2 + 12 * len(entries) + 4
    directory, values = bytearray(struct.pack("<H", len(entries))), bytearray()
    tile_offset_at = 0
    for tag, kind, items in entries:
        packed = struct.pack(f"<{len(items)}{'H' if kind == _SHORT else 'I'}", *items)
        if tag == 324:
            tile_offset_at = 8 + len(directory) + 8  # the header, then the entry's tag, type and count
        if len(packed) <= 4:
            directory += struct.pack("<HHI", tag, kind, len(items)) + packed.ljust(4, b"\0")
        else:
            directory += struct.pack("<HHII", tag, kind, len(items), header_and_directory + len(values))
            values += packed
    directory += b"\0\0\0\0"  # no next directory
    blob = bytearray(b"II*\0" + struct.pack("<I", 8) + directory + values)
    blob[tile_offset_at : tile_offset_at + 4] = struct.pack("<I", len(blob))
    return bytes(blob) + data
