import io

import h5py
import numpy as np
import pytest

from pcam_pipeline.errors import InvalidInput
from pcam_pipeline.hdf5_input import check_counts_agree, inspect_patches, open_hdf5, read_coords, read_labels


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
