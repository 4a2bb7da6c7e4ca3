"""What a dropped key is: a dataset's split file, its training settings, an HDF5 slide, a whole-slide image or
its sidecar, told from the key's location and name (`classify_incoming_key`), or why it is not usable. Names
are untrusted: they are checked for what a person could not see or a key could not hold."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Literal

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.keys import INCOMING, SIDECAR_SUFFIX
from pcam_pipeline.core.labs import LABS, check_lab_name, in_lab
from pcam_pipeline.core.names import usable_name

type Split = Literal["train", "valid", "test"]
type SlideReader = Literal["tiff", "openslide", "archive"]

_SPLIT_ALIASES: dict[str, Split] = {
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
# Whole-slide images by the reader that opens them: the pipeline's own (pyramidal TIFF, generic and Aperio; a
# vendor TIFF inside falls back to OpenSlide), OpenSlide 4 (single-file vendor formats), or a .zip of a multi-file
# slide (MIRAX, DICOM, VMS) that OpenSlide opens once unpacked. OME-TIFF: the id has no ".ome".
WHOLE_SLIDE_SUFFIXES: dict[str, SlideReader] = {
    **dict.fromkeys((".ome.tiff", ".ome.tif", ".svs", ".tiff", ".tif"), "tiff"),
    **dict.fromkeys((".ndpi", ".scn", ".bif", ".czi", ".svslide"), "openslide"),
    ".zip": "archive",
}
MULTI_FILE_SUFFIXES = (".mrxs", ".vms", ".vmu", ".dcm")  # readable once zipped with their companion files
UNREADABLE_SLIDE_SUFFIXES = (".isyntax",)
SLIDE_KINDS = (
    "HDF5 patches (.h5, .h5.gz), a whole-slide image (.svs, .tif, .tiff, .ndpi, .scn, .bif, .czi, .svslide, "
    "or a .zip of a MIRAX, DICOM or VMS slide) or a sidecar (.json)"
)


@dataclass(frozen=True)
class DroppedFile:
    """A file a lab dropped, identified by its key and S3 version."""

    bucket: str
    key: str
    version_id: str | None  # None where the bucket is not versioned
    etag: str = ""
    event_key: str = ""  # the key as the event spelled it, before URL-decoding
    run_context: str = ""  # what else the run's outputs depend on (a whole-slide image's sidecar)
    # S3's order of the key's PUTs and DELETEs (hex; pad to equal length, then compare), for integrators
    sequencer: str = ""

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
    split: Split
    role: Literal["x", "y"]
    compressed: bool


@dataclass(frozen=True)
class SlideFile:
    slide_id: str
    compressed: bool


@dataclass(frozen=True)
class WholeSlideFile:
    """``incoming/slides/<slide_id>.svs|.tif|.ndpi|.zip|…``: a scanner's pyramidal image, and what opens it."""

    slide_id: str
    reader: SlideReader = "tiff"


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


def _slide_kind(name: str) -> SlideFile | WholeSlideFile | SlideSidecarFile:
    lowered = name.lower()
    stripped = _strip_h5_suffix(name)
    if stripped is not None and stripped[0]:
        return SlideFile(slide_id=usable_name(stripped[0], "slide id"), compressed=stripped[1])
    for suffix, reader in WHOLE_SLIDE_SUFFIXES.items():
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return WholeSlideFile(slide_id=usable_name(name[: -len(suffix)], "slide id"), reader=reader)
    if lowered.endswith(SIDECAR_SUFFIX) and len(name) > len(SIDECAR_SUFFIX):
        return SlideSidecarFile(slide_id=usable_name(name[: -len(SIDECAR_SUFFIX)], "slide id"))
    if lowered.endswith(MULTI_FILE_SUFFIXES):
        raise InvalidInput(
            f"a {name.rsplit('.', 1)[-1].upper()} slide is several files, and this is only one of them",
            f"the slide's files in one .zip named after the slide ({name.rsplit('.', 1)[0]}.zip): see docs/labs.md, "
            "'Multi-file slides'",
            repr(name),
        )
    if lowered.endswith(UNREADABLE_SLIDE_SUFFIXES):
        raise InvalidInput(
            f"the pipeline cannot read {name.rsplit('.', 1)[-1].upper()} slides",
            "a format OpenSlide 4 reads, or a pyramidal TIFF (Philips' software exports iSyntax as TIFF)",
            repr(name),
        )
    raise InvalidInput("the file is not a kind of slide the pipeline reads", SLIDE_KINDS, repr(name))


IncomingKind = DatasetFile | SlideFile | WholeSlideFile | SlideSidecarFile | DatasetSettingsFile


# What operating systems and file managers add beside a lab's files when a folder is uploaded whole.
_SYSTEM_FILES = (".ds_store", "thumbs.db", "desktop.ini", ".localized")


def is_a_labs_file(key: str) -> bool:
    """False for what is not a lab's data and is ignored without a word: a folder marker (the S3 console's
    "Create folder" writes ``<folder>/``), macOS's ``.DS_Store`` and ``._<name>`` files, Windows' ``Thumbs.db``
    and ``desktop.ini``. Any other name is a drop, refused with a reason if it cannot be one."""
    name = key.rsplit("/", 1)[-1]
    return bool(name) and not name.startswith("._") and name.lower() not in _SYSTEM_FILES


def classify_incoming_key(key: str) -> IncomingKind:
    """Tell what a dropped key is from its location and name, or explain why it is not usable.

    ``incoming/labs/<lab>/slides/…`` and ``incoming/labs/<lab>/datasets/…`` are a lab's: the same kinds, with
    ids named in the lab (``labs/<lab>/<name>``, ``core/labs``)."""
    if not key.startswith(INCOMING):
        raise InvalidInput("the file is outside incoming/", "a key under incoming/", repr(key))
    rest = key[len(INCOMING) :]
    if rest.startswith(f"{LABS}/"):
        lab, _, inside = rest[len(LABS) + 1 :].partition("/")
        check_lab_name(lab)
        kind = _classify(inside, key)
        if isinstance(kind, DatasetFile | DatasetSettingsFile):
            return replace(kind, dataset=in_lab(lab, kind.dataset))
        return replace(kind, slide_id=in_lab(lab, kind.slide_id))
    kind = _classify(rest, key)
    if getattr(kind, "slide_id", None) == LABS or getattr(kind, "dataset", None) == LABS:
        raise InvalidInput(
            "the name 'labs' is reserved for labs' folders", "any other slide id or dataset name", repr(key)
        )
    return kind


def _classify(rest: str, key: str) -> IncomingKind:
    """What ``incoming/<rest>`` is, in one lab's (or the deployment's own) folders."""
    parts = rest.split("/")
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
        dataset = usable_name(parts[1], "dataset name")
        if dataset == "slides":
            raise InvalidInput(
                "the dataset name 'slides' is reserved for slide manifests", "any other dataset name", repr(dataset)
            )
        if parts[2] == TRAINING_SETTINGS_FILE:
            return DatasetSettingsFile(dataset=dataset)
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
            dataset=dataset,
            split=_SPLIT_ALIASES[split.group(1).lower()],
            role="x" if role.group(1).lower() == "x" else "y",
            compressed=compressed,
        )
    raise InvalidInput(
        "the file is not where the pipeline looks for data",
        "incoming/datasets/<dataset>/<file>.h5 or incoming/slides/<slide_id>.h5",
        repr(key),
    )
