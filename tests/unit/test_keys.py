import pytest

from pcam_pipeline.core.dropped_files import (
    DatasetFile,
    DroppedFile,
    SlideFile,
    SlideSidecarFile,
    WholeSlideFile,
    classify_incoming_key,
)
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.keys import (
    dataset_image_prefix,
    prediction_key,
    quarantine_error_key,
    quarantine_key,
    slide_image_prefix,
    slide_manifest_key,
    split_manifest_key,
    staged_key,
)


@pytest.mark.parametrize(
    ("name", "split", "role", "compressed"),
    [
        ("camelyonpatch_level_2_split_train_x.h5", "train", "x", False),
        ("camelyonpatch_level_2_split_train_y.h5.gz", "train", "y", True),
        ("camelyonpatch_level_2_split_valid_x.h5.gz", "valid", "x", True),
        ("camelyonpatch_level_2_split_test_y.h5", "test", "y", False),
        ("lab7_validation_x.hdf5", "valid", "x", False),
        ("Test-Y.H5", "test", "y", False),
    ],
)
def test_official_and_lab_dataset_names_are_recognised(name, split, role, compressed):
    kind = classify_incoming_key(f"incoming/datasets/pcam/{name}")
    assert kind == DatasetFile(dataset="pcam", split=split, role=role, compressed=compressed)


def test_slide_id_is_the_file_name_without_extension_even_with_spaces_and_accents():
    assert classify_incoming_key("incoming/slides/Patient 7 – lymph nødé.h5.gz") == SlideFile(
        slide_id="Patient 7 – lymph nødé", compressed=True
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("S-001.svs", WholeSlideFile("S-001")),
        ("S-001.TIF", WholeSlideFile("S-001")),
        ('node, 3 "left".tiff', WholeSlideFile('node, 3 "left"')),
        ("node-3.ome.tif", WholeSlideFile("node-3")),
        ("node-3.OME.TIFF", WholeSlideFile("node-3")),
        ("S-002.ndpi", WholeSlideFile("S-002", reader="openslide")),
        ("S-003.CZI", WholeSlideFile("S-003", reader="openslide")),
        ("S-004.scn", WholeSlideFile("S-004", reader="openslide")),
        ("S-005.zip", WholeSlideFile("S-005", reader="archive")),
        ("S-001.json", SlideSidecarFile("S-001")),
        ("S-001.h5", SlideFile("S-001", compressed=False)),
    ],
)
def test_whole_slide_images_and_sidecars_are_recognised_by_extension(name, kind):
    assert classify_incoming_key(f"incoming/slides/{name}") == kind


NESTED = "slides sit directly in incoming/slides/ (a slide id cannot hold a '/')"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("incoming/datasets/pcam/train_images.h5", "does not say which split"),
        ("incoming/datasets/pcam/notes.txt", "must be an HDF5 file"),
        ("incoming/slides/scan.png", "not a kind of slide the pipeline reads"),
        ("incoming/slides/scan.isyntax", "cannot read ISYNTAX slides"),
        ("incoming/slides/scan.mrxs", "MRXS slide is several files"),
        ("incoming/slides/scan.dcm", "DCM slide is several files"),
        ("incoming/slides/.svs", "not a kind of slide"),
        ("incoming/elsewhere/a_train_x.h5", "not where the pipeline looks"),
        ("incoming/datasets/a_train_x.h5", "not where the pipeline looks"),
        ("incoming/datasets/slides/a_train_x.h5", "reserved"),
    ],
)
def test_unusable_names_are_explained(key, problem):
    with pytest.raises(InvalidInput, match=problem) as caught:
        classify_incoming_key(key)
    assert caught.value.expected, "a lab must be told what was expected"


def test_staged_copy_of_a_gz_file_lives_outside_incoming():
    assert staged_key("incoming/slides/s1.h5.gz") == "staging/slides/s1.h5"


def test_run_id_differs_between_uploads_of_the_same_key():
    first = DroppedFile("b", "incoming/slides/s.h5", "v1")
    second = DroppedFile("b", "incoming/slides/s.h5", "v2")
    assert first.run_id != second.run_id
    assert first.run_id == DroppedFile("b", "incoming/slides/s.h5", "v1").run_id


def test_version_falls_back_to_etag_when_the_bucket_is_not_versioned():
    assert DroppedFile("b", "k", None, "abc").version == "abc"


@pytest.mark.parametrize(
    "key",
    [
        "incoming/datasets/../camelyonpatch_level_2_split_train_x.h5",
        "incoming/datasets/%2e%2e/a_test_y.h5.gz",
        "incoming/slides/..h5",
        "incoming/slides/ünïcode slide #1.h5",
        "incoming/slides/" + "é" * 127 + ".h5",
    ],
)
def test_whatever_a_lab_names_a_file_the_pipeline_writes_only_under_its_own_prefixes(key):
    """S3 keys are literal strings: '..' is a name, not a way out of a prefix."""
    own = ("images/", "manifests/", "staging/", "quarantine/", "predictions/", "scores/", "evaluations/")
    written = [quarantine_key(key), quarantine_error_key(key), staged_key(key + ".gz")]
    try:
        kind = classify_incoming_key(key)
    except InvalidInput as refusal:  # '.' and '..' are refused as names (file-system copies would climb up)
        assert refusal.problem.endswith("is a path step, not a name")
        assert all(k.startswith(own) for k in written)
        return
    if isinstance(kind, DatasetFile):
        written += [dataset_image_prefix(kind.dataset, kind.split, "run"), split_manifest_key(kind.dataset, "x", "t")]
    else:
        written += [slide_image_prefix(kind.slide_id, "run"), slide_manifest_key(kind.slide_id, "run")]
        written += [prediction_key(kind.slide_id, ext) for ext in ("csv", "json", "png")]
    assert all(k.startswith(own) and not k.startswith("incoming/") for k in written)


def test_the_bucket_layout_is_the_documented_one():
    """The keys downstream systems and operators rely on (docs/integrators.md), spelled out."""
    from pcam_pipeline.core import keys

    assert dataset_image_prefix("ds", "train", "r1") == "images/datasets/ds/train/r1/"
    assert slide_image_prefix("s 1", "r1") == "images/slides/s 1/r1/"
    assert keys.patch_file_name(7, "images/datasets/ds/train/r1/") == "0000007.jpg"
    assert keys.patch_file_name(7, "images/slides/s 1/r1/") == "r1-0000007.jpg", "unique base names in a job"
    assert keys.coords_key("s 1", "r1") == "tiling/s 1/r1/coords.npy"
    assert keys.labels_key("ds", "train", "r1") == "manifests/ds/train/labels-r1.npy"
    assert split_manifest_key("ds", "valid", "tok").startswith("manifests/ds/valid/")
    assert split_manifest_key("ds", "valid", "tok").endswith(".manifest")
    assert slide_manifest_key("s 1", "r1") == "manifests/slides/s 1/r1.manifest"
    assert prediction_key("s 1", "csv") == "predictions/s 1.csv"
    assert keys.evaluation_prefix("m1") == "evaluations/m1/"
    assert quarantine_key("incoming/slides/a.h5") == "quarantine/incoming/slides/a.h5"
    assert quarantine_error_key("incoming/slides/a.h5") == "quarantine/incoming/slides/a.h5.error.json"
    assert (keys.INCOMING, keys.SCORES, keys.MODELS, keys.CODE) == ("incoming/", "scores/", "models/", "code/")


@pytest.mark.parametrize(
    ("name", "split", "compressed"),
    [("run_testing_y.hdf5.gz", "test", True), ("run_training_x.hdf5", "train", False), ("a-val-x.h5", "valid", False)],
)
def test_every_split_alias_and_suffix_is_recognised(name, split, compressed):
    found = classify_incoming_key(f"incoming/datasets/ds/{name}")
    assert (found.split, found.compressed) == (split, compressed)


def test_an_uploads_run_id_is_stable_across_releases():
    """Outputs of an upload live under its run id: changing the formula would orphan every earlier output."""
    assert DroppedFile("b", "incoming/slides/a.h5", "v1").run_id == "a8a9672e0fbc"


NESTED = "slides sit directly in incoming/slides/ (a slide id cannot hold a '/')"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("incoming/slides/a.png", "the file is not a kind of slide the pipeline reads"),
        ("incoming/datasets/slides/x_train_x.h5", "the dataset name 'slides' is reserved for slide manifests"),
        ("incoming/datasets/ds/notes.txt", "a dataset file must be an HDF5 file (or training.json)"),
        ("incoming/datasets/ds/data.h5", "the file name does not say which split and which kind of data it holds"),
        ("incoming/other/a.h5", "the file is not where the pipeline looks for data"),
        ("elsewhere/a.h5", "the file is outside incoming/"),
        ("incoming/datasets//x_train_x.h5", "the file is not where the pipeline looks for data"),
    ],
)
def test_each_refusal_says_exactly_what_labs_read_in_docs_labs(key, problem):
    with pytest.raises(InvalidInput) as refused:
        classify_incoming_key(key)
    assert refused.value.problem == problem
    assert refused.value.expected
    named = (
        key.rsplit("/", 1)[-1] if problem != "the dataset name 'slides' is reserved for slide manifests" else "slides"
    )
    assert refused.value.found in (repr(named), repr(key)), "it names what was found"


def test_manifest_ids_are_twelve_hex_digits_of_the_inputs():
    from pcam_pipeline.core.keys import short_id

    assert len(short_id("a|b")) == 12 and short_id("a|b") != short_id("a|c")


NESTED = "slides sit directly in incoming/slides/ (a slide id cannot hold a '/')"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("incoming/slides/a/b.h5", "slides sit directly in incoming/slides/ (a slide id cannot hold a '/')"),
        (
            "incoming/slides/../datasets/d_train_x.h5",
            "slides sit directly in incoming/slides/ (a slide id cannot hold a '/')",
        ),
        ("incoming/slides/..h5", "the slide id is a path step, not a name"),
        ("incoming/datasets/./d_train_x.h5", "the dataset name is a path step, not a name"),
        ("incoming/slides/line\nbreak.h5", "the slide id holds control characters (a line break, a tab…)"),
        ("incoming/datasets/tab\there/d_test_y.h5", "the dataset name holds control characters (a line break, a tab…)"),
        ("incoming/slides/" + "a" * 256 + ".h5", "the slide id is too long"),
        ("incoming/datasets/" + "ü" * 128 + "/d_test_y.h5", "the dataset name is too long"),
    ],
)
def test_names_that_cannot_become_keys_and_files_are_refused_with_a_reason(key, problem):
    with pytest.raises(InvalidInput) as refusal:
        classify_incoming_key(key)
    assert refusal.value.problem == problem


def test_a_name_of_255_bytes_is_accepted_and_a_key_too_long_to_quarantine_as_is_is_quarantined_by_its_hash():
    assert classify_incoming_key("incoming/slides/" + "a" * 255 + ".h5").slide_id == "a" * 255
    longest = "incoming/slides/" + "b" * (1024 - len("incoming/slides/.h5")) + ".h5"
    assert len(longest.encode()) == 1024  # S3's longest key
    assert len(quarantine_error_key(longest).encode()) <= 1024
    assert quarantine_key(longest).startswith("quarantine/long-names/")
    assert quarantine_error_key(longest) == quarantine_key(longest) + ".error.json"
    assert quarantine_key("incoming/slides/short.h5") == "quarantine/incoming/slides/short.h5"


def test_a_labs_long_key_is_quarantined_where_its_policy_lets_it_read():
    from pcam_pipeline.core.labs import lab_policy

    longest = "incoming/labs/north/slides/" + "c" * (1024 - len("incoming/labs/north/slides/.h5")) + ".h5"
    target = quarantine_key(longest)
    assert target.startswith("quarantine/incoming/labs/north/long-names/") and len(target.encode()) <= 1024
    readable = lab_policy("arn:aws:s3:::b", "north")["Statement"][1]["Resource"]
    assert any(f"arn:aws:s3:::b/{target}".startswith(allowed.rstrip("*")) for allowed in readable)
    assert len(quarantine_error_key(longest).encode()) <= 1024
