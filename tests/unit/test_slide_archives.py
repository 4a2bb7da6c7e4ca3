"""A multi-file slide dropped as one .zip is unpacked only when it is safe and holds exactly one slide: names that
climb out of their folder, links, encryption, too many files or bytes, and ambiguous contents are refused with
the layout a lab should zip instead."""

from __future__ import annotations

import stat
import zipfile
from dataclasses import replace

import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.archives import unpack_slide_archive
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS, SlideLimits


def zipped(tmp_path, files: dict, name: str = "slide.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as bundle:
        for member, body in files.items():
            bundle.writestr(member, body)
    return path


def unpack(tmp_path, path, limits=DEFAULT_SLIDE_LIMITS):
    return unpack_slide_archive(path, tmp_path / "unpacked", limits)


def test_a_mirax_slide_is_opened_from_its_mrxs_beside_its_folder(tmp_path):
    path = zipped(tmp_path, {"case-1/slide.mrxs": b"[GENERAL]", "case-1/slide/Slidedat.ini": b"x",
                             "case-1/slide/Index.dat": b"x", "case-1/slide/Data0000.dat": b"x"})  # fmt: skip
    opened = unpack(tmp_path, path)
    assert opened == tmp_path / "unpacked" / "case-1" / "slide.mrxs"
    assert (opened.parent / "slide" / "Data0000.dat").read_bytes() == b"x"


def test_a_dicom_series_is_opened_from_any_of_its_files(tmp_path):
    path = zipped(tmp_path, {"series/b.dcm": b"b", "series/a.dcm": b"a", "__MACOSX/series/._a.dcm": b"junk"})
    assert unpack(tmp_path, path) == tmp_path / "unpacked" / "series" / "a.dcm"
    assert not (tmp_path / "unpacked" / "__MACOSX").exists(), "what macOS adds is not unpacked"


def test_a_single_slide_file_may_be_zipped_too(tmp_path):
    path = zipped(tmp_path, {"scan.ndpi": b"II*\x00", "notes.txt": b"stained 2026-11-30"})
    assert unpack(tmp_path, path).name == "scan.ndpi"


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"../escape.dcm": b"x"}, "named outside its own folder"),
        ({"/etc/slide.dcm": b"x"}, "named outside its own folder"),
        ({"series\\a.dcm": b"x"}, "named outside its own folder"),
        ({"C:/slide.dcm": b"x"}, "named outside its own folder"),
        ({}, "the .zip is empty"),
        ({"a.mrxs": b"x", "b.mrxs": b"x"}, "does not hold exactly one slide"),
        ({"readme.txt": b"x"}, "does not hold exactly one slide"),
        ({"one/a.dcm": b"x", "two/b.dcm": b"x"}, "DICOM files are in more than one folder"),
        # Names a disk cannot hold as given (shared/repros/zips.py): each once ended in five retries.
        ({"slide": b"x", "slide/Data0000.dat": b"y", "slide.mrxs": b"m"}, "a file and a folder of the same name"),
        ({"slide/Data0000.dat": b"y", "slide": b"x", "slide.mrxs": b"m"}, "a file and a folder of the same name"),
        ({".": b"x", "s.mrxs": b"m"}, "an entry without a file name"),
        ({"a/b.dcm": b"x", "a//b.dcm": b"y"}, "the same file twice"),
        ({"d" * 300 + ".dcm": b"x"}, "a file name too long for a disk"),
    ],
)
def test_unsafe_or_ambiguous_archives_are_refused(tmp_path, files, problem):
    with pytest.raises(InvalidInput, match=problem) as caught:
        unpack(tmp_path, zipped(tmp_path, files))
    assert caught.value.expected
    assert not list(tmp_path.glob("escape*")) and not (tmp_path.parent / "escape.dcm").exists()


def test_a_symbolic_link_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        link = zipfile.ZipInfo("series/a.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic link"):
        unpack(tmp_path, path)


def test_an_encrypted_archive_is_refused(tmp_path):
    data = bytearray(zipped(tmp_path, {"series/a.dcm": b"ciphertext"}).read_bytes())
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the entry's header and its directory record
        data[data.index(header) + flags_at] |= 0x1  # "encrypted" (zipfile writes no encryption itself)
    path = tmp_path / "secret.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="encrypted"):
        unpack(tmp_path, path)


def test_too_many_files_or_bytes_are_refused_before_anything_is_unpacked(tmp_path):
    many = zipped(tmp_path, {f"series/{i}.dcm": b"x" for i in range(11)}, "many.zip")
    with pytest.raises(InvalidInput, match="too many files"):
        unpack(tmp_path, many, replace(SlideLimits(), max_archive_files=10))
    large = zipped(tmp_path, {"series/a.dcm": b"\0" * 5000}, "large.zip")
    with pytest.raises(InvalidInput, match="unpacks to more than a slide may hold"):
        unpack(tmp_path, large, replace(SlideLimits(), max_vendor_bytes=4096))
    assert not (tmp_path / "unpacked").exists()


def test_a_file_that_is_not_a_zip_or_is_cut_short_is_refused(tmp_path):
    words = tmp_path / "words.zip"
    words.write_bytes(b"not a zip at all")
    with pytest.raises(InvalidInput, match="cannot be unpacked"):
        unpack(tmp_path, words)
    whole = zipped(tmp_path, {"series/a.dcm": bytes(range(256)) * 100}, "whole.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[:-200])
    with pytest.raises(InvalidInput, match="cannot be unpacked"):
        unpack(tmp_path, cut)


def test_names_flagged_utf8_that_are_not_utf8_are_refused_with_a_reason(tmp_path):
    path = zipped(tmp_path, {"sé.mrxs": b"m"})
    path.write_bytes(path.read_bytes().replace("sé".encode(), b"s\xff\xff"))  # the flag says UTF-8; it is not
    with pytest.raises(InvalidInput, match="file names are not readable text"):
        unpack(tmp_path, path)


def test_a_disk_that_cannot_take_the_files_is_a_reason_not_a_retry(tmp_path, monkeypatch):
    import shutil

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(InvalidInput, match="cannot be written to the function's disk") as caught:
        unpack(tmp_path, zipped(tmp_path, {"s.ndpi": b"II*\x00"}))
    assert "No space left on device" in caught.value.found


def test_the_archive_is_deleted_once_unpacked_to_leave_its_space_to_the_staged_copy(tmp_path):
    path = zipped(tmp_path, {"case/slide.mrxs": b"[GENERAL]", "case/slide/Data0000.dat": b"x" * 1000})
    assert unpack(tmp_path, path).name == "slide.mrxs"
    assert not path.exists()


def test_a_zip_that_would_not_fit_the_disk_is_refused_before_unpacking(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10_000, 9_500, 500))
    path = zipped(tmp_path, {"s.ndpi": b"II*\x00" + bytes(2_000)})
    with pytest.raises(InvalidInput, match="does not fit the function's ephemeral storage") as caught:
        unpack(tmp_path, path)
    assert caught.value.found == "2,004 bytes" and not (tmp_path / "unpacked" / "s.ndpi").exists()
