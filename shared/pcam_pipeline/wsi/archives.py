"""Multi-file slides dropped as one .zip (MIRAX, a DICOM series, Hamamatsu VMS): unpacked into ephemeral storage
with the checks an untrusted archive needs (names, links, sizes, counts, encryption), then the one file OpenSlide
is given. Pure apart from the local files."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.structure import SlideLimits

ARCHIVE_LAYOUT = (
    "one slide per .zip: MIRAX as slide.mrxs beside its folder slide/ (Slidedat.ini, Index.dat, Data*.dat); "
    "DICOM as the files of one slide's series in one folder (.dcm, or any name: told by their content); "
    "Hamamatsu VMS as the .vms with its .jpg files; "
    "or a single slide file (.ndpi, .svs, .scn, .bif, .tif)"
)
# The file OpenSlide opens, by the kind of archive; a DICOM series is opened from any of its files.
MAX_NAME_BYTES = 255  # of one file or folder name, on Lambda's ext4 and most file systems
ENTRY_SUFFIXES = (".mrxs", ".vms", ".ndpi", ".svs", ".scn", ".bif", ".tif", ".tiff", ".svslide", ".czi")


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """InvalidInput (a reason, not a retry that fails the same way) when ``folder``'s disk cannot take ``needed``
    more bytes: Lambda's ephemeral storage is at most 10 GB, and the disk is checked before each copy."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise InvalidInput("the slide does not fit the function's ephemeral storage",
                           f"at most {free:,} bytes free for {what}", f"{needed:,} bytes")  # fmt: skip


def unpack_slide_archive(archive: Path, into: Path, limits: SlideLimits) -> Path:
    """Unpack ``archive`` into ``into``, then delete it (its space is the staged copy's); the path of the slide
    file in it. InvalidInput for anything unsafe, or too large for the disk."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            # macOS's "Compress" adds __MACOSX/ and ._ files: not the lab's
            members = [m for m in bundle.infolist() if not m.is_dir() and not _mac_extra(m.filename)]
            _check_members(members, limits)
            into.mkdir(parents=True, exist_ok=True)
            check_free_space(into, sum(m.file_size for m in members), "the .zip's files")
            for member in members:
                target = into.joinpath(*PurePosixPath(member.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(target, "wb") as copy:
                    shutil.copyfileobj(source, copy, 8 << 20)  # zipfile stops at the declared size, checks the CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise InvalidInput("the .zip cannot be unpacked (damaged, or an unsupported compression)",
                           "a .zip made with deflate or no compression", str(exc)[:300]) from exc  # fmt: skip
    except UnicodeDecodeError as exc:  # the UTF-8 flag set on names that are not UTF-8
        raise InvalidInput("the .zip's file names are not readable text", "names in UTF-8 (or with the UTF-8 flag "
                           "unset)", str(exc)[:300]) from exc  # fmt: skip
    except OSError as exc:  # what the checks cannot foresee of the local disk (it is full, …): a reason, no retry
        raise InvalidInput("the .zip's files cannot be written to the function's disk", "a .zip that unpacks into "
                           "ephemeral storage", f"{exc.strerror or exc}") from exc  # fmt: skip
    archive.unlink()
    return _slide_file(into, [m.filename for m in members])


def _mac_extra(name: str) -> bool:
    path = PurePosixPath(name)
    return path.parts[:1] == ("__MACOSX",) or path.name == ".DS_Store" or path.name.startswith("._")


def _check_members(members: list[zipfile.ZipInfo], limits: SlideLimits) -> None:
    if not members:
        raise InvalidInput("the .zip is empty", ARCHIVE_LAYOUT)
    if len(members) > limits.max_archive_files:
        limit = f"at most {limits.max_archive_files:,}"
        raise InvalidInput("the .zip holds too many files", limit, f"{len(members):,}")
    total = sum(m.file_size for m in members)
    if total > limits.max_vendor_bytes:
        raise InvalidInput(
            "the .zip unpacks to more than a slide may hold (MaxVendorSlideGB)",
            f"at most {limits.max_vendor_bytes / 2**30:g} GiB unpacked",
            f"{total:,} bytes declared",
        )
    for member in members:
        _check_member(member)
    _check_paths([PurePosixPath(m.filename).parts for m in members])


def _check_paths(paths: list[tuple[str, ...]]) -> None:
    """Each entry is a distinct file the disk can hold: a name, not ``.``; no two entries the same file; no file
    that is also a folder of another; no name longer than a file system's 255 bytes."""
    files: set[tuple[str, ...]] = set()
    for parts in paths:
        name = "/".join(parts)
        if not parts:
            raise InvalidInput("the .zip holds an entry without a file name", "named files", "an entry named '.'")
        if too_long := [part for part in parts if len(part.encode()) > MAX_NAME_BYTES]:
            raise InvalidInput("the .zip holds a file name too long for a disk",
                               f"names of at most {MAX_NAME_BYTES} bytes", repr(too_long[0][:100]) + "…")  # fmt: skip
        if parts in files:
            raise InvalidInput("the .zip holds the same file twice", "each file once", repr(name[:200]))
        files.add(parts)
    folders = {parts[:depth] for parts in files for depth in range(1, len(parts))}
    if both := sorted(files & folders):
        raise InvalidInput("the .zip holds a file and a folder of the same name", "distinct names",
                           repr("/".join(both[0])[:200]))  # fmt: skip


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or ".." in parts or "\x00" in name or (parts and ":" in parts[0]):
        raise InvalidInput("the .zip holds a file named outside its own folder", "relative names", repr(name[:200]))
    if stat.S_ISLNK(member.external_attr >> 16):
        raise InvalidInput("the .zip holds a symbolic link", "plain files only", repr(name[:200]))
    if member.flag_bits & 0x1:
        raise InvalidInput("the .zip is encrypted", "a .zip without a password", repr(name[:200]))


def is_dicom(path: Path) -> bool:
    """A DICOM file by its content: "DICM" after the 128-byte preamble (DICOM PS3.10, 7.1). PACS and DICOMweb
    exports often name their files without the .dcm suffix."""
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _slide_file(root: Path, names: list[str]) -> Path:
    by_suffix: dict[str, list[str]] = {}
    for name in names:
        by_suffix.setdefault(PurePosixPath(name).suffix.lower(), []).append(name)
    entries = [name for suffix in ENTRY_SUFFIXES for name in by_suffix.get(suffix, [])]
    dicom = sorted(
        name
        for name in names
        if not entries
        and (PurePosixPath(name).suffix.lower() == ".dcm" or is_dicom(root.joinpath(*PurePosixPath(name).parts)))
    )
    if dicom and not entries:
        folders = {PurePosixPath(name).parent for name in dicom}
        if len(folders) > 1:
            raise InvalidInput("the .zip's DICOM files are in more than one folder", ARCHIVE_LAYOUT,
                               ", ".join(sorted(map(str, folders)))[:300])  # fmt: skip
        return root.joinpath(*PurePosixPath(dicom[0]).parts)
    if len(entries) == 1:
        return root.joinpath(*PurePosixPath(entries[0]).parts)
    found = ", ".join(sorted(entries))[:300] if entries else f"{len(names)} files, none a slide"
    raise InvalidInput("the .zip does not hold exactly one slide", ARCHIVE_LAYOUT, found)
