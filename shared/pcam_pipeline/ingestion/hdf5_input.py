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
from pcam_pipeline.ingestion.hdf5_layout import (
    DEFAULT_LIMITS,
    PATCH_SHAPE,
    PIXELS,
    FileLimits,
    check_readable,
    checked_dataset,
    storage_of,
)

__all__ = ["DEFAULT_LIMITS", "FileLimits", "PatchFileInfo", "check_counts_agree", "inspect_patches", "open_hdf5",
           "read_coords", "read_labels"]  # fmt: skip

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
    x = checked_dataset(handle, "x", limits, holds=PIXELS)
    if x.ndim != 4 or tuple(x.shape[1:]) != PATCH_SHAPE:
        raise InvalidInput(
            "'x' has the wrong shape", "(N, 96, 96, 3): N RGB patches of 96x96 pixels", str(tuple(x.shape))
        )
    if x.dtype != np.uint8:
        raise InvalidInput("'x' has the wrong data type", PIXELS, str(x.dtype))
    if x.shape[0] == 0:
        raise InvalidInput("'x' holds no patches", "at least one patch", "(0, 96, 96, 3)")
    check_readable(x, "patches")
    has_coords = handle.get("coords", getlink=True) is not None
    coords = read_coords(handle, x.shape[0], limits) if has_coords else None
    return PatchFileInfo(count=int(x.shape[0]), storage=storage_of(x), coords=coords)


@_damage_explained
def read_labels(handle: h5py.File, limits: FileLimits = DEFAULT_LIMITS) -> NDArray[Any]:
    """Return ``y`` as a flat uint8 array of 0/1, accepting (N,) and PCam's (N, 1, 1, 1)."""
    y = checked_dataset(handle, "y", limits, holds="integer labels 0 or 1")
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
    coords = checked_dataset(handle, "coords", limits, holds="integer positions")
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
