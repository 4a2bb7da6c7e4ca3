"""What a dropped HDF5 file may declare, checked before any of its data is read: names, shapes, types,
chunking and attributes (the file is untrusted). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from pcam_pipeline.core.errors import InvalidInput

PATCH_SHAPE = (96, 96, 3)
PIXELS = "uint8 pixel values 0-255"


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


def checked_dataset(handle: h5py.File, name: str, limits: FileLimits, holds: str) -> h5py.Dataset:
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


def _check_plain_numbers(dtype: np.dtype[Any], name: str, holds: str) -> None:
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


def storage_of(dataset: h5py.Dataset) -> str:
    if dataset.chunks is None:
        return "contiguous"
    compression = f", {dataset.compression}" if dataset.compression else ""
    return f"chunked {dataset.chunks}{compression}"


def check_readable(dataset: h5py.Dataset, what: str) -> None:
    """Read the last element: a file cut short fails here rather than halfway through conversion."""
    if dataset.shape[0] == 0:
        return
    try:
        dataset[-1]
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidInput(
            f"the {what} cannot be read to the end (the file is damaged or truncated)", "a complete file", str(exc)
        ) from exc
