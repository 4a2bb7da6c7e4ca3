"""Reading and checking dropped HDF5 files. Pure: works on any seekable binary file object.

Only the header and the small arrays (labels, coordinates) are read here; patch pixels are read
shard by shard during conversion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import h5py
import numpy as np

from pcam_pipeline.errors import InvalidInput

PATCH_SHAPE = (96, 96, 3)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class PatchFileInfo:
    """What the header of a patch file (``x``) says."""

    count: int
    storage: str  # "contiguous" or "chunked (…)", for logs and status
    has_coords: bool


@contextlib.contextmanager
def open_hdf5(fileobj: BinaryIO, size: int) -> Iterator[h5py.File]:
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


def _dataset(handle: h5py.File, name: str) -> h5py.Dataset:
    if name not in handle:
        found = ", ".join(sorted(handle.keys())) or "no datasets"
        raise InvalidInput(f"the file has no '{name}' dataset", f"a dataset named '{name}'", found)
    node = handle[name]
    if not isinstance(node, h5py.Dataset):
        raise InvalidInput(f"'{name}' is a group, not an array", f"'{name}' to be an array", "a group")
    return node


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


def inspect_patches(handle: h5py.File) -> PatchFileInfo:
    """Check ``x`` (and ``coords`` if present) without reading the pixels."""
    x = _dataset(handle, "x")
    if x.ndim != 4 or tuple(x.shape[1:]) != PATCH_SHAPE:
        raise InvalidInput(
            "'x' has the wrong shape", "(N, 96, 96, 3): N RGB patches of 96x96 pixels", str(tuple(x.shape))
        )
    if x.dtype != np.uint8:
        raise InvalidInput("'x' has the wrong data type", "uint8 pixel values 0-255", str(x.dtype))
    if x.shape[0] == 0:
        raise InvalidInput("'x' holds no patches", "at least one patch", "(0, 96, 96, 3)")
    _check_readable(x, "patches")
    has_coords = "coords" in handle
    if has_coords:
        read_coords(handle, x.shape[0])
    return PatchFileInfo(count=int(x.shape[0]), storage=_storage(x), has_coords=has_coords)


def read_labels(handle: h5py.File) -> np.ndarray:
    """Return ``y`` as a flat uint8 array of 0/1, accepting (N,) and PCam's (N, 1, 1, 1)."""
    y = _dataset(handle, "y")
    if y.ndim == 0 or y.shape[0] == 0 or int(np.prod(y.shape[1:])) != 1:
        raise InvalidInput("'y' has the wrong shape", "(N,) or (N, 1, 1, 1): one label per patch", str(tuple(y.shape)))
    if not np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_:
        raise InvalidInput("'y' has the wrong data type", "integer labels 0 or 1", str(y.dtype))
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


def read_coords(handle: h5py.File, count: int) -> np.ndarray:
    """Return ``coords`` as an (N, 2) int64 array of (x, y) patch positions."""
    coords = handle["coords"]
    if not isinstance(coords, h5py.Dataset) or coords.shape != (count, 2):
        shape = str(tuple(coords.shape)) if isinstance(coords, h5py.Dataset) else "a group"
        raise InvalidInput("'coords' has the wrong shape", f"({count}, 2): one (x, y) position per patch", shape)
    if not np.issubdtype(coords.dtype, np.integer):
        raise InvalidInput("'coords' has the wrong data type", "integer positions", str(coords.dtype))
    return np.asarray(coords[...], dtype=np.int64)


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
