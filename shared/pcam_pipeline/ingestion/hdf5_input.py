"""Reading and checking dropped HDF5 files. Pure: works on any seekable binary file object.

Only the header and the small arrays (labels, coordinates) are read here; patch pixels are read
shard by shard during conversion.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.ports import ByteFile

PATCH_SHAPE = (96, 96, 3)
PIXELS = "uint8 pixel values 0-255"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class FileLimits:
    """What a dropped file may declare before any of its data is read (it is untrusted)."""

    max_patches: int = 2_000_000  # MaxPatchesPerFile; the PCam train split holds 262,144
    max_chunk_bytes: int = 64 << 20  # one chunk is decoded whole: 64 MiB is about 2,400 patches
    max_attributes: int = 256  # per dataset
    max_top_level_names: int = 256
    # A patch position, in pixels: 1,000,000 is 25 cm at 0.25 µm/px, three times a slide's length. Beyond it
    # a position is a mistake or an attack (its heatmap would need terabytes).
    max_coordinate: int = 1_000_000


DEFAULT_LIMITS = FileLimits()


@dataclass(frozen=True)
class PatchFileInfo:
    """What the header of a patch file (``x``) says."""

    count: int
    storage: str  # "contiguous" or "chunked (…)", for logs and status
    coords: NDArray[Any] | None  # (count, 2) level-0 corners, when the file has them

    @property
    def has_coords(self) -> bool:
        return self.coords is not None


@contextlib.contextmanager
def open_hdf5(fileobj: ByteFile, size: int) -> Iterator[h5py.File]:
    """Open an HDF5 file object, turning every way it can be unreadable into a plain explanation."""
    if size == 0:
        raise InvalidInput("the file is empty (0 bytes)", "an HDF5 file")
    fileobj.seek(0)
    head = fileobj.read(8)
    fileobj.seek(0)
    if head != HDF5_SIGNATURE:
        raise InvalidInput(
            "the file is not an HDF5 file", "the HDF5 signature at the start of the file", f"the bytes {head[:8]!r}"
        )
    try:
        handle = h5py.File(fileobj, "r")
    except OSError as exc:
        if "truncated" in str(exc):
            raise InvalidInput(
                "the HDF5 file is truncated (incomplete upload?)",
                "the whole file",
                f"{size} bytes, fewer than the file's header declares",
            ) from exc
        raise InvalidInput("the HDF5 file cannot be opened", "a readable HDF5 file", str(exc)) from exc
    with handle:
        yield handle


def _dataset(handle: h5py.File, name: str, limits: FileLimits, holds: str) -> h5py.Dataset:
    """The dataset ``name``, checked from its header alone: nothing is read from it, and no link is followed."""
    names = handle.id.get_num_objs()
    if names > limits.max_top_level_names:
        raise InvalidInput(
            "the file holds too many datasets and groups", f"at most {limits.max_top_level_names}", f"{names:,}"
        )
    link = handle.get(name, getlink=True)  # a link is looked at, never followed
    if link is None:
        found = ", ".join(sorted(handle.keys())) or "no datasets"
        raise InvalidInput(f"the file has no '{name}' dataset", f"a dataset named '{name}'", found)
    if isinstance(link, h5py.SoftLink):
        raise InvalidInput(
            f"'{name}' is a link, not data", f"'{name}' stored in the file itself", f"a link to {link.path}"
        )
    if isinstance(link, h5py.ExternalLink):
        raise InvalidInput(
            f"'{name}' is a link to another file (links out of a dropped file are never followed)",
            f"'{name}' stored in the file itself",
            f"a link to {link.path} in {link.filename}",
        )
    node = handle[name]
    if not isinstance(node, h5py.Dataset):
        raise InvalidInput(f"'{name}' is a group, not an array", f"'{name}' to be an array", "a group")
    _check_layout(node, name, limits, holds)
    return node


def _check_layout(dataset: h5py.Dataset, name: str, limits: FileLimits, holds: str) -> None:
    """Refuse what would read outside the file, decode what the layer cannot, or make work from nothing."""
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise InvalidInput(
            f"'{name}' is a virtual dataset (its data lives in other files)", f"'{name}' stored in the file itself"
        )
    if plist.get_external_count():
        raise InvalidInput(
            f"'{name}' keeps its data in external files", f"'{name}' stored in the file itself",
            ", ".join(plist.get_external(i)[0].decode(errors="replace") for i in range(plist.get_external_count())),
        )  # fmt: skip
    _check_plain_numbers(dataset.dtype, name, holds)
    attributes = h5py.h5o.get_info(dataset.id).num_attrs
    if attributes > limits.max_attributes:
        raise InvalidInput(f"'{name}' has too many attributes", f"at most {limits.max_attributes}", f"{attributes:,}")
    if dataset.ndim and dataset.shape[0] > limits.max_patches:
        raise InvalidInput(
            f"'{name}' declares more patches than a file may hold",
            f"at most {limits.max_patches:,} (the MaxPatchesPerFile setting)",
            f"{dataset.shape[0]:,}",
        )
    for index in range(plist.get_nfilters()):
        code, _flags, _values, filter_name = plist.get_filter(index)
        if not h5py.h5z.filter_avail(code):
            raise InvalidInput(
                f"'{name}' is compressed with a filter the pipeline cannot decode",
                "gzip, lzf, shuffle, fletcher32, scale-offset or n-bit",
                f"filter {code} ({filter_name.decode(errors='replace') or 'unnamed'})",
            )
    if layout == h5py.h5d.CHUNKED:
        _check_chunks(dataset, name, limits)
    elif layout == h5py.h5d.CONTIGUOUS and dataset.size and dataset.id.get_storage_size() < dataset.nbytes:
        raise InvalidInput(
            f"'{name}' declares data that was never written",
            f"{dataset.nbytes:,} bytes of data",
            f"{dataset.id.get_storage_size():,} bytes stored",
        )


def _check_plain_numbers(dtype: np.dtype, name: str, holds: str) -> None:
    kind = (
        "an enumeration" if h5py.check_enum_dtype(dtype) is not None
        else "variable-length data" if h5py.check_vlen_dtype(dtype) is not None
        else "a compound type" if dtype.fields is not None
        else None if dtype.kind in "biu" and not dtype.subdtype
        else f"{dtype}"
    )  # fmt: skip
    if kind is not None:
        raise InvalidInput(f"'{name}' has the wrong data type", holds, kind)


def _check_chunks(dataset: h5py.Dataset, name: str, limits: FileLimits) -> None:
    chunk_bytes = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
    if chunk_bytes > limits.max_chunk_bytes:
        raise InvalidInput(
            f"'{name}' is stored in chunks too large to decode",
            f"chunks of at most {limits.max_chunk_bytes >> 20} MiB",
            f"chunks {dataset.chunks} of {chunk_bytes / (1 << 20):,.0f} MiB",
        )
    needed = int(np.prod([-(-extent // edge) for extent, edge in zip(dataset.shape, dataset.chunks, strict=True)]))
    stored = dataset.id.get_num_chunks()
    if stored < needed:
        raise InvalidInput(
            f"'{name}' declares data that was never written (unwritten chunks)",
            f"{needed:,} chunks for {dataset.shape[0]:,} patches",
            f"{stored:,} chunks stored",
        )


def _storage(dataset: h5py.Dataset) -> str:
    if dataset.chunks is None:
        return "contiguous"
    compression = f", {dataset.compression}" if dataset.compression else ""
    return f"chunked {dataset.chunks}{compression}"


def _check_readable(dataset: h5py.Dataset, what: str) -> None:
    """Read the last element: a file cut short fails here rather than halfway through conversion."""
    if dataset.shape[0] == 0:
        return
    try:
        dataset[-1]
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidInput(
            f"the {what} cannot be read to the end (the file is damaged or truncated)", "a complete file", str(exc)
        ) from exc


def _damage_explained[**P, T](read: Callable[P, T]) -> Callable[P, T]:
    """HDF5 reports damaged metadata (a bad B-tree node, heap or object header) as OSError, RuntimeError,
    KeyError or ValueError from wherever it is met: each becomes a plain reason, and the file is quarantined."""

    @functools.wraps(read)
    def explained(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return read(*args, **kwargs)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(
                "the file's structure is damaged (HDF5 cannot read its metadata)", "a readable HDF5 file", str(exc)
            ) from exc

    return explained


@_damage_explained
def inspect_patches(handle: h5py.File, limits: FileLimits = DEFAULT_LIMITS) -> PatchFileInfo:
    """Check ``x`` (and ``coords`` if present) without reading the pixels."""
    x = _dataset(handle, "x", limits, holds=PIXELS)
    if x.ndim != 4 or tuple(x.shape[1:]) != PATCH_SHAPE:
        raise InvalidInput(
            "'x' has the wrong shape", "(N, 96, 96, 3): N RGB patches of 96x96 pixels", str(tuple(x.shape))
        )
    if x.dtype != np.uint8:
        raise InvalidInput("'x' has the wrong data type", PIXELS, str(x.dtype))
    if x.shape[0] == 0:
        raise InvalidInput("'x' holds no patches", "at least one patch", "(0, 96, 96, 3)")
    _check_readable(x, "patches")
    has_coords = handle.get("coords", getlink=True) is not None
    coords = read_coords(handle, x.shape[0], limits) if has_coords else None
    return PatchFileInfo(count=int(x.shape[0]), storage=_storage(x), coords=coords)


@_damage_explained
def read_labels(handle: h5py.File, limits: FileLimits = DEFAULT_LIMITS) -> NDArray[Any]:
    """Return ``y`` as a flat uint8 array of 0/1, accepting (N,) and PCam's (N, 1, 1, 1)."""
    y = _dataset(handle, "y", limits, holds="integer labels 0 or 1")
    if y.ndim == 0 or y.shape[0] == 0 or int(np.prod(y.shape[1:])) != 1:
        raise InvalidInput("'y' has the wrong shape", "(N,) or (N, 1, 1, 1): one label per patch", str(tuple(y.shape)))
    try:
        labels = np.asarray(y[...]).reshape(-1)
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(
            "the labels cannot be read (the file is damaged or truncated)", "a complete file", str(exc)
        ) from exc
    bad = np.setdiff1d(np.unique(labels), [0, 1])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:5])
        raise InvalidInput("'y' has labels other than 0 and 1", "0 (normal) or 1 (tumour)", f"the values {shown}")
    return labels.astype(np.uint8)


@_damage_explained
def read_coords(handle: h5py.File, count: int, limits: FileLimits = DEFAULT_LIMITS) -> NDArray[Any]:
    """Return ``coords`` as an (N, 2) int64 array of (x, y) patch positions."""
    coords = _dataset(handle, "coords", limits, holds="integer positions")
    if coords.shape != (count, 2):
        raise InvalidInput(
            "'coords' has the wrong shape", f"({count}, 2): one (x, y) position per patch", str(tuple(coords.shape))
        )
    positions = np.asarray(coords[...], dtype=np.int64)
    low, high = (int(positions.min()), int(positions.max())) if positions.size else (0, 0)
    if low < 0 or high > limits.max_coordinate:
        raise InvalidInput(
            "'coords' has positions outside any slide",
            f"pixel positions from 0 to {limits.max_coordinate:,}",
            f"positions from {low:,} to {high:,}",
        )
    return positions


def check_counts_agree(x_count: int, y_count: int, arrived: str) -> None:
    """x and y of a split describe the same patches: their counts must match."""
    if x_count != y_count:
        raise InvalidInput(
            f"the split's images and labels disagree in number (this {arrived} file arrived second)",
            f"as many labels as patches ({x_count})"
            if arrived == "labels"
            else f"as many patches as labels ({y_count})",
            str(y_count if arrived == "labels" else x_count),
        )
