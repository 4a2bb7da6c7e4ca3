"""HDF5 files built to hurt the pipeline, each with the refusal a lab must read (problem, expected, found).

Every one is refused from its header, before any of its data is read. Used by the unit tests of
hdf5_input, the local-stack tests of bad input and the fuzz test's seeds."""

import io

import h5py
import numpy as np

PATCHES = np.ones((2, 96, 96, 3), np.uint8)


def hostile_file(build) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def _virtual(handle):
    layout = h5py.VirtualLayout(shape=(4, 96, 96, 3), dtype=np.uint8)
    layout[:] = h5py.VirtualSource("elsewhere.h5", "x", shape=(4, 96, 96, 3))
    handle.create_virtual_dataset("x", layout)


def _partly_written(handle):
    x = handle.create_dataset("x", shape=(1000, 96, 96, 3), dtype=np.uint8, chunks=(10, 96, 96, 3))
    x[:10] = 1  # one chunk of a hundred


def _many_attributes(handle):
    x = handle.create_dataset("x", data=PATCHES)
    for index in range(300):
        x.attrs[f"a{index}"] = index


def _many_names(handle):
    handle.create_dataset("x", data=PATCHES)
    for index in range(300):
        handle.create_group(f"g{index}")


HOSTILE = {
    "soft link": (lambda h: (h.create_dataset("real", data=PATCHES), h.__setitem__("x", h5py.SoftLink("/real"))),
                  "x", "'x' is a link, not data", "'x' stored in the file itself", "a link to /real"),
    "external link": (lambda h: h.__setitem__("x", h5py.ExternalLink("/etc/hostname", "/x")), "x",
                      "'x' is a link to another file (links out of a dropped file are never followed)",
                      "'x' stored in the file itself", "a link to /x in /etc/hostname"),
    "labels linked": (lambda h: h.__setitem__("y", h5py.ExternalLink("other.h5", "/y")), "y",
                      "'y' is a link to another file (links out of a dropped file are never followed)",
                      "'y' stored in the file itself", "a link to /y in other.h5"),
    "virtual": (_virtual, "x", "'x' is a virtual dataset (its data lives in other files)",
                "'x' stored in the file itself", ""),
    "external storage": (lambda h: h.create_dataset("x", shape=(4, 96, 96, 3), dtype=np.uint8,
                                                    external=[("elsewhere.raw", 0, h5py.h5f.UNLIMITED)]),
                         "x", "'x' keeps its data in external files", "'x' stored in the file itself", "elsewhere.raw"),
    "40 million patches": (lambda h: h.create_dataset("x", shape=(40_000_000, 96, 96, 3), dtype=np.uint8,
                                                      chunks=(1, 96, 96, 3)),
                           "x", "'x' declares more patches than a file may hold",
                           "at most 2,000,000 (the MaxPatchesPerFile setting)", "40,000,000"),
    "unwritten chunks": (_partly_written, "x", "'x' declares data that was never written (unwritten chunks)",
                         "100 chunks for 1,000 patches", "1 chunks stored"),
    "never written": (lambda h: h.create_dataset("x", shape=(4, 96, 96, 3), dtype=np.uint8), "x",
                      "'x' declares data that was never written", "110,592 bytes of data", "0 bytes stored"),
    "unknown filter": (lambda h: h.create_dataset("x", data=PATCHES, chunks=(1, 96, 96, 3), compression=32001,
                                                  allow_unknown_filter=True),
                       "x", "'x' is compressed with a filter the pipeline cannot decode",
                       "gzip, lzf, shuffle, fletcher32, scale-offset or n-bit", "filter 32001 (unnamed)"),
    "huge chunks": (lambda h: h.create_dataset("x", shape=(3000, 96, 96, 3), dtype=np.uint8,
                                               chunks=(3000, 96, 96, 3)),
                    "x", "'x' is stored in chunks too large to decode", "chunks of at most 64 MiB",
                    "chunks (3000, 96, 96, 3) of 79 MiB"),
    "enum labels": (lambda h: h.create_dataset("y", data=np.zeros(4, np.uint8),
                                               dtype=h5py.enum_dtype({"normal": 0, "tumour": 1}, basetype="u1")),
                    "y", "'y' has the wrong data type", "integer labels 0 or 1", "an enumeration"),
    "variable-length labels": (lambda h: h.create_dataset("y", shape=(2,), dtype=h5py.vlen_dtype(np.uint8)),
                               "y", "'y' has the wrong data type", "integer labels 0 or 1", "variable-length data"),
    "compound patches": (lambda h: h.create_dataset("x", shape=(2,), dtype=[("r", "u1"), ("g", "u1")]),
                         "x", "'x' has the wrong data type", "uint8 pixel values 0-255", "a compound type"),
    "text labels": (lambda h: h.create_dataset("y", data=np.array([b"0", b"1"])), "y",
                    "'y' has the wrong data type", "integer labels 0 or 1", "|S1"),
    "many attributes": (_many_attributes, "x", "'x' has too many attributes", "at most 256", "300"),
    "many names": (_many_names, "x", "the file holds too many datasets and groups", "at most 256", "301"),
}  # fmt: skip
