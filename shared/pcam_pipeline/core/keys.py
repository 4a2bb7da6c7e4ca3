"""The bucket's key layout: what labs drop where, and where the pipeline writes.

Labs write only under ``incoming/``; the pipeline writes only under its own prefixes below,
none of which triggers it again.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

from pcam_pipeline.core.errors import InvalidInput

INCOMING = "incoming/"
IMAGES = "images/"
MANIFESTS = "manifests/"
QUARANTINE = "quarantine/"
STAGING = "staging/"
# Slide ids and dataset names: 255 bytes, like a file name on most file systems.
MAX_NAME_BYTES = 255
EVALUATIONS = "evaluations/"
MODELS = "models/"
CODE = "code/"
SCORES = "scores/"
PREDICTIONS = "predictions/"
TILING = "tiling/"

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "test": "test",
    "testing": "test",
}
_SPLIT_TOKEN = re.compile(r"(?:^|[_\-. ])(" + "|".join(_SPLIT_ALIASES) + r")(?=[_\-. ])", re.IGNORECASE)
_ROLE_SUFFIX = re.compile(r"[_\-]([xy])$", re.IGNORECASE)
_H5_SUFFIXES = (".h5.gz", ".hdf5.gz", ".h5", ".hdf5")
TRAINING_SETTINGS_FILE = "training.json"
# Whole-slide images the reader decodes (pyramidal tiled TIFF: generic and Aperio), and formats it cannot.
WHOLE_SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".svs", ".tiff", ".tif")  # OME-TIFF: the id has no ".ome"
UNREADABLE_SLIDE_SUFFIXES = (".ndpi", ".mrxs", ".vms", ".vmu", ".scn", ".bif", ".czi", ".isyntax", ".dcm")
SIDECAR_SUFFIX = ".json"
SLIDE_KINDS = "HDF5 patches (.h5, .h5.gz), a whole-slide image (.svs, .tif, .tiff) or a sidecar (.json)"


@dataclass(frozen=True)
class DroppedFile:
    """A file a lab dropped, identified by its key and S3 version."""

    bucket: str
    key: str
    version_id: str | None  # None where the bucket is not versioned
    etag: str = ""
    event_key: str = ""  # the key as the event spelled it, before URL-decoding
    run_context: str = ""  # what else the run's outputs depend on (a whole-slide image's sidecar)

    def as_spelled_in_event(self) -> DroppedFile:
        return replace(self, key=self.event_key or self.key)

    @property
    def version(self) -> str:
        """What tells this upload apart from another of the same key."""
        return self.version_id or self.etag

    @property
    def run_id(self) -> str:
        """Short id of this exact upload: outputs of different uploads never mix."""
        context = f"\n{self.run_context}" if self.run_context else ""
        return hashlib.sha256(f"{self.key}\n{self.version}{context}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DatasetFile:
    dataset: str
    split: Literal["train", "valid", "test"]
    role: Literal["x", "y"]
    compressed: bool


@dataclass(frozen=True)
class SlideFile:
    slide_id: str
    compressed: bool


@dataclass(frozen=True)
class WholeSlideFile:
    """``incoming/slides/<slide_id>.svs|.tif|.tiff``: a scanner's pyramidal image."""

    slide_id: str


@dataclass(frozen=True)
class SlideSidecarFile:
    """``incoming/slides/<slide_id>.json``: what a lab tells about a slide the file itself does not (µm/px)."""

    slide_id: str


@dataclass(frozen=True)
class DatasetSettingsFile:
    """``incoming/datasets/<dataset>/training.json``: the dataset's own training settings."""

    dataset: str


def _strip_h5_suffix(name: str) -> tuple[str, bool] | None:
    lowered = name.lower()
    for suffix in _H5_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)], suffix.endswith(".gz")
    return None


def _usable_name(name: str, what: str) -> str:
    """A slide id or dataset name becomes part of many keys and files: it must be short and printable."""
    if name in (".", ".."):
        raise InvalidInput(f"the {what} is a path step, not a name", f"a {what} other than . and ..", repr(name))
    if any(unicodedata.category(character) == "Cc" for character in name):
        raise InvalidInput(
            f"the {what} holds control characters (a line break, a tab…)", f"a {what} of printable characters",
            repr(name[:80]),
        )  # fmt: skip
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(
            f"the {what} is too long", f"at most {MAX_NAME_BYTES} bytes (UTF-8)", f"{len(name.encode())} bytes"
        )
    return name


def _slide_kind(name: str) -> SlideFile | WholeSlideFile | SlideSidecarFile:
    lowered = name.lower()
    stripped = _strip_h5_suffix(name)
    if stripped is not None and stripped[0]:
        return SlideFile(slide_id=_usable_name(stripped[0], "slide id"), compressed=stripped[1])
    for suffix in WHOLE_SLIDE_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return WholeSlideFile(slide_id=_usable_name(name[: -len(suffix)], "slide id"))
    if lowered.endswith(SIDECAR_SUFFIX) and len(name) > len(SIDECAR_SUFFIX):
        return SlideSidecarFile(slide_id=_usable_name(name[: -len(SIDECAR_SUFFIX)], "slide id"))
    if lowered.endswith(UNREADABLE_SLIDE_SUFFIXES):
        raise InvalidInput(
            f"the pipeline cannot read {name.rsplit('.', 1)[-1].upper()} slides",
            "a pyramidal TIFF (.tif, .tiff) or an Aperio .svs; convert with, for example, "
            "vips tiffsave slide.ndpi slide.tif --tile --pyramid --compression jpeg",
            repr(name),
        )
    raise InvalidInput("the file is not a kind of slide the pipeline reads", SLIDE_KINDS, repr(name))


IncomingKind = DatasetFile | SlideFile | WholeSlideFile | SlideSidecarFile | DatasetSettingsFile


def classify_incoming_key(key: str) -> IncomingKind:
    """Tell what a dropped key is from its location and name, or explain why it is not usable."""
    if not key.startswith(INCOMING):
        raise InvalidInput("the file is outside incoming/", "a key under incoming/", repr(key))
    parts = key[len(INCOMING) :].split("/")
    where = parts[0] if parts else ""
    stripped = _strip_h5_suffix(parts[-1])
    if where == "slides" and len(parts) > 2:
        raise InvalidInput(
            "slides sit directly in incoming/slides/ (a slide id cannot hold a '/')",
            "incoming/slides/<slide_id>.h5 (or .svs, .tif, .tiff, .json)",
            repr(key),
        )
    if where == "slides" and len(parts) == 2:
        return _slide_kind(parts[1])
    if where == "datasets" and len(parts) == 3 and parts[1]:
        _usable_name(parts[1], "dataset name")
        if parts[1] == "slides":
            raise InvalidInput(
                "the dataset name 'slides' is reserved for slide manifests", "any other dataset name", repr(parts[1])
            )
        if parts[2] == TRAINING_SETTINGS_FILE:
            return DatasetSettingsFile(dataset=parts[1])
        if stripped is None:
            raise InvalidInput(
                "a dataset file must be an HDF5 file (or training.json)",
                "a name ending in .h5 or .h5.gz",
                repr(parts[-1]),
            )
        stem, compressed = stripped
        role = _ROLE_SUFFIX.search(stem)
        split = _SPLIT_TOKEN.search(stem + "_")
        if role is None or split is None:
            raise InvalidInput(
                "the file name does not say which split and which kind of data it holds",
                "a name containing train, valid or test and ending in _x (images) or _y (labels), "
                "e.g. camelyonpatch_level_2_split_train_x.h5",
                repr(parts[-1]),
            )
        return DatasetFile(
            dataset=parts[1],
            split=_SPLIT_ALIASES[split.group(1).lower()],
            role=role.group(1).lower(),
            compressed=compressed,
        )
    raise InvalidInput(
        "the file is not where the pipeline looks for data",
        "incoming/datasets/<dataset>/<file>.h5 or incoming/slides/<slide_id>.h5",
        repr(key),
    )


def staged_key(key: str) -> str:
    """Where the decompressed copy of a dropped ``.gz`` file is written."""
    return STAGING + key[len(INCOMING) : -len(".gz")]


def _quarantined_name(key: str) -> str:
    """The key itself; for a key too long to take the prefix and suffix (S3 keys end at 1,024 bytes), its hash
    (the error file names the key in full)."""
    if len((QUARANTINE + key + ".error.json").encode()) <= 1024:
        return key
    return "long-names/" + hashlib.sha256(key.encode()).hexdigest()


def quarantine_key(key: str) -> str:
    return QUARANTINE + _quarantined_name(key)


def quarantine_error_key(key: str) -> str:
    return QUARANTINE + _quarantined_name(key) + ".error.json"


def dataset_image_prefix(dataset: str, split: str, run_id: str) -> str:
    return f"{IMAGES}datasets/{dataset}/{split}/{run_id}/"


SLIDE_IMAGES = f"{IMAGES}slides/"


def sidecar_key(slide_id: str) -> str:
    """Where a lab drops a slide's sidecar (µm/px)."""
    return f"{INCOMING}slides/{slide_id}{SIDECAR_SUFFIX}"


def slide_image_prefix(slide_id: str, run_id: str) -> str:
    return f"{SLIDE_IMAGES}{slide_id}/{run_id}/"


def scoring_manifest_key(job_name: str) -> str:
    """The ManifestFile of one scoring job: the patches of every slide it scores."""
    return f"{MANIFESTS}scoring/{job_name}.manifest"


def patch_file_name(index: int) -> str:
    return f"{index:07d}.jpg"


def short_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def split_manifest_key(dataset: str, split: str, readiness_token: str) -> str:
    """One manifest per combination of inputs, so a job never sees its manifest change under it."""
    return f"{MANIFESTS}{dataset}/{split}/{short_id(readiness_token)}.manifest"


def slide_manifest_key(slide_id: str, run_id: str) -> str:
    return f"{MANIFESTS}slides/{slide_id}/{run_id}.manifest"


def tiling_key(slide_id: str, run_id: str, name: str) -> str:
    """Where ingestion keeps a whole-slide upload's tile plan (plan.json) and thumbnail (thumbnail.jpg)."""
    return f"{TILING}{slide_id}/{run_id}/{name}"


def prediction_key(slide_id: str, extension: str) -> str:
    return f"{PREDICTIONS}{slide_id}.{extension}"


def evaluation_prefix(model_name: str) -> str:
    return f"{EVALUATIONS}{model_name}/"
