import io

import h5py
import numpy as np
import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.ingestion.hdf5_input import check_counts_agree, inspect_patches, open_hdf5, read_coords, read_labels
from tests.hostile_files import HOSTILE, hostile_file


def _open(path):
    data = path.read_bytes()
    return open_hdf5(io.BytesIO(data), len(data))


def test_a_pcam_patch_file_is_accepted(write_h5, sample_patches):
    x, _ = sample_patches
    with _open(write_h5(x=x)) as handle:
        info = inspect_patches(handle)
    assert (info.count, info.storage, info.has_coords) == (40, "contiguous", False)


def test_chunked_gzip_compressed_patches_are_accepted(tmp_path, sample_patches):
    x, _ = sample_patches
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=x, chunks=(8, 96, 96, 3), compression="gzip")
    with _open(path) as handle:
        info = inspect_patches(handle)
        assert np.array_equal(handle["x"][5:9], x[5:9])
    assert info.storage.startswith("chunked (8, 96, 96, 3), gzip")


@pytest.mark.parametrize("shape", [(96, 96, 3), (4, 64, 64, 3), (4, 96, 96, 4), (4, 96, 96)])
def test_patches_of_the_wrong_shape_are_explained(write_h5, shape):
    with _open(write_h5(x=np.zeros(shape, np.uint8))) as handle, pytest.raises(InvalidInput) as caught:
        inspect_patches(handle)
    assert caught.value.problem == "'x' has the wrong shape"
    assert caught.value.expected.startswith("(N, 96, 96, 3)")
    assert caught.value.found == str(shape)


def test_float_patches_are_rejected_with_the_dtype_found(write_h5):
    with _open(write_h5(x=np.zeros((2, 96, 96, 3), np.float32))) as handle:
        with pytest.raises(InvalidInput, match="expected uint8 pixel values 0-255; found float32"):
            inspect_patches(handle)


def test_a_file_without_x_names_what_it_holds(write_h5):
    with _open(write_h5(images=np.zeros((2, 96, 96, 3), np.uint8))) as handle:
        with pytest.raises(InvalidInput, match="no 'x' dataset.*found images"):
            inspect_patches(handle)


def test_an_empty_file_is_explained():
    with pytest.raises(InvalidInput, match="empty"), open_hdf5(io.BytesIO(b""), 0):
        pass


def test_a_file_that_is_not_hdf5_is_explained():
    data = b"id,label\n1,0\n"
    with pytest.raises(InvalidInput, match="not an HDF5 file"), open_hdf5(io.BytesIO(data), len(data)):
        pass


def test_a_truncated_file_is_explained(write_h5, sample_patches):
    data = write_h5(x=sample_patches[0]).read_bytes()
    cut = data[: len(data) // 2]
    with pytest.raises(InvalidInput, match="truncated"), open_hdf5(io.BytesIO(cut), len(cut)) as handle:
        inspect_patches(handle)


@pytest.mark.parametrize("shape", [(5,), (5, 1, 1, 1)])
def test_labels_in_either_pcam_shape_are_flattened(write_h5, shape):
    labels = np.array([0, 1, 1, 0, 1], np.uint8).reshape(shape)
    with _open(write_h5(y=labels)) as handle:
        assert read_labels(handle).tolist() == [0, 1, 1, 0, 1]


def test_labels_other_than_0_and_1_are_listed(write_h5):
    with _open(write_h5(y=np.array([0, 1, 2, 7], np.int64))) as handle:
        with pytest.raises(InvalidInput, match="labels other than 0 and 1.*the values 2, 7"):
            read_labels(handle)


def test_float_labels_are_rejected(write_h5):
    with _open(write_h5(y=np.array([0.0, 1.0]))) as handle, pytest.raises(InvalidInput, match="integer labels"):
        read_labels(handle)


def test_coords_must_be_one_integer_pair_per_patch(write_h5, sample_patches):
    x = sample_patches[0][:4]
    with _open(write_h5(x=x, coords=np.zeros((4, 3), np.int64))) as handle:
        with pytest.raises(InvalidInput, match=r"'coords' has the wrong shape; expected \(4, 2\)"):
            inspect_patches(handle)
    with _open(write_h5(x=x, coords=np.arange(8).reshape(4, 2))) as handle:
        assert inspect_patches(handle).has_coords
        assert read_coords(handle, 4).tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_disagreeing_counts_name_the_file_that_arrived_second():
    with pytest.raises(InvalidInput, match="labels file arrived second.*expected as many labels as patches \\(10\\)"):
        check_counts_agree(10, 9, arrived="labels")
    check_counts_agree(10, 10, arrived="images")


def _h5(**datasets) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for name, value in datasets.items():
            if value is None:
                handle.create_group(name)
            else:
                handle.create_dataset(name, data=value)
    return buffer.getvalue()


def _last_patch_damaged() -> bytes:
    """Compressed patches, one per chunk, whose last chunk is garbage: the header and the others are intact."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        x = handle.create_dataset(
            "x", data=np.ones((3, 96, 96, 3), np.uint8), chunks=(1, 96, 96, 3), compression="gzip"
        )
        last = x.id.get_chunk_info(2)
    data = bytearray(buffer.getvalue())
    data[last.byte_offset : last.byte_offset + last.size] = b"\xff" * last.size
    return bytes(data)


def _superblock_damaged() -> bytes:
    data = bytearray(_h5(x=np.ones((1, 96, 96, 3), np.uint8)))
    data[8:40] = b"\xff" * 32  # keep the signature, break what follows it
    return bytes(data)


PATCHES = np.ones((2, 96, 96, 3), np.uint8)
# Every refusal, pinned in full: labs read the problem, what was expected and what was found.
REFUSALS = {
    "empty": (b"", "x", "the file is empty (0 bytes)", "an HDF5 file", ""),
    "not hdf5": (
        b"id,label\n1,0\n",
        "x",
        "the file is not an HDF5 file",
        "the HDF5 signature at the start of the file",
        "the bytes b'id,label'",
    ),
    "superblock": (
        _superblock_damaged(),
        "x",
        "the HDF5 file cannot be opened",
        "a readable HDF5 file",
        None,  # h5py's own words
    ),
    "no x": (
        _h5(images=PATCHES, y=np.zeros(2, np.uint8)),
        "x",
        "the file has no 'x' dataset",
        "a dataset named 'x'",
        "images, y",
    ),
    "nothing at all": (_h5(), "x", "the file has no 'x' dataset", "a dataset named 'x'", "no datasets"),
    "x is a group": (_h5(x=None), "x", "'x' is a group, not an array", "'x' to be an array", "a group"),
    "no patches": (
        _h5(x=np.zeros((0, 96, 96, 3), np.uint8)),
        "x",
        "'x' holds no patches",
        "at least one patch",
        "(0, 96, 96, 3)",
    ),
    "float patches": (
        _h5(x=PATCHES.astype(np.float32)),
        "x",
        "'x' has the wrong data type",
        "uint8 pixel values 0-255",
        "float32",
    ),
    "last patch damaged": (
        _last_patch_damaged(),
        "x",
        "the patches cannot be read to the end (the file is damaged or truncated)",
        "a complete file",
        None,
    ),
    "coords a group": (
        _h5(x=PATCHES, coords=None),
        "x",
        "'coords' is a group, not an array",
        "'coords' to be an array",
        "a group",
    ),
    "float coords": (
        _h5(x=PATCHES, coords=np.zeros((2, 2), np.float64)),
        "x",
        "'coords' has the wrong data type",
        "integer positions",
        "float64",
    ),
    "no labels": (
        _h5(y=np.zeros(0, np.uint8)),
        "y",
        "'y' has the wrong shape",
        "(N,) or (N, 1, 1, 1): one label per patch",
        "(0,)",
    ),
    "two labels per patch": (
        _h5(y=np.zeros((4, 2), np.uint8)),
        "y",
        "'y' has the wrong shape",
        "(N,) or (N, 1, 1, 1): one label per patch",
        "(4, 2)",
    ),
    "a label of two values": (
        _h5(y=np.zeros((4, 1, 2), np.uint8)),
        "y",
        "'y' has the wrong shape",
        "(N,) or (N, 1, 1, 1): one label per patch",
        "(4, 1, 2)",
    ),
    "float labels": (
        _h5(y=np.zeros(3, np.float32)),
        "y",
        "'y' has the wrong data type",
        "integer labels 0 or 1",
        "float32",
    ),
    "many bad labels": (
        _h5(y=np.array([0, 1, 2, 3, 5, 7, 9, 11], np.int16)),
        "y",
        "'y' has labels other than 0 and 1",
        "0 (normal) or 1 (tumour)",
        "the values 2, 3, 5, 7, 9",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_every_refusal_says_what_was_wrong_what_was_expected_and_what_was_found(case):
    data, reader, problem, expected, found = REFUSALS[case]
    with pytest.raises(InvalidInput) as caught, open_hdf5(io.BytesIO(data), len(data)) as handle:
        inspect_patches(handle) if reader == "x" else read_labels(handle)
    assert (caught.value.problem, caught.value.expected) == (problem, expected)
    if found is None:
        assert caught.value.found  # the library's own explanation, whatever its wording
    else:
        assert caught.value.found == found


def test_a_truncated_file_says_how_many_bytes_arrived(write_h5, sample_patches):
    data = write_h5(x=sample_patches[0]).read_bytes()[:2000]
    with pytest.raises(InvalidInput) as caught, open_hdf5(io.BytesIO(data), len(data)):
        pass
    assert caught.value.problem == "the HDF5 file is truncated (incomplete upload?)"
    assert caught.value.expected == "the whole file"
    assert caught.value.found == "2000 bytes, fewer than the file's header declares"


def test_one_patch_and_one_label_are_enough(write_h5):
    with _open(write_h5(x=np.ones((1, 96, 96, 3), np.uint8), y=np.ones((1, 1, 1, 1), np.uint8))) as handle:
        assert inspect_patches(handle).count == 1
        assert read_labels(handle).tolist() == [1]


def test_boolean_labels_are_accepted(write_h5):
    with _open(write_h5(y=np.array([True, False]))) as handle:
        assert read_labels(handle).tolist() == [1, 0]


def test_chunked_uncompressed_storage_is_named_without_a_filter(tmp_path):
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=np.ones((4, 96, 96, 3), np.uint8), chunks=(2, 96, 96, 3))
    with _open(path) as handle:
        assert inspect_patches(handle).storage == "chunked (2, 96, 96, 3)"


def test_disagreeing_counts_say_both_counts_whichever_arrived_second():
    with pytest.raises(InvalidInput) as caught:
        check_counts_agree(10, 9, arrived="images")
    assert caught.value.problem == (
        "the split's images and labels disagree in number (this images file arrived second)"
    )
    assert (caught.value.expected, caught.value.found) == ("as many patches as labels (9)", "10")


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_is_refused_from_its_header_with_a_plain_reason(case):
    build, reader, problem, expected, found = HOSTILE[case]
    data = hostile_file(build)
    with pytest.raises(InvalidInput) as caught, open_hdf5(io.BytesIO(data), len(data)) as handle:
        inspect_patches(handle) if reader == "x" else read_labels(handle)
    assert (caught.value.problem, caught.value.expected, caught.value.found) == (problem, expected, found)


def test_the_patch_limit_is_a_setting():
    from pcam_pipeline.ingestion.hdf5_input import FileLimits

    data = _h5(x=np.zeros((5, 96, 96, 3), np.uint8))
    with open_hdf5(io.BytesIO(data), len(data)) as handle:
        assert inspect_patches(handle, FileLimits(max_patches=5)).count == 5
        with pytest.raises(InvalidInput, match="at most 4 "):
            inspect_patches(handle, FileLimits(max_patches=4))


@pytest.mark.parametrize(
    ("coords", "found"),
    [([[0, 0], [1_152_000, 1_152_000]], "positions from 0 to 1,152,000"), ([[-96, 0], [0, 0]], "from -96 to 0")],
)
def test_patch_positions_outside_any_slide_are_refused(tmp_path, coords, found):
    path = tmp_path / "far.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((2, 96, 96, 3), np.uint8)
        f["coords"] = np.array(coords, np.int64)
    with h5py.File(path) as handle, pytest.raises(InvalidInput, match="outside any slide") as refusal:
        inspect_patches(handle)
    assert found in refusal.value.found
