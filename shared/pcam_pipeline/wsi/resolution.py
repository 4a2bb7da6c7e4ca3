"""µm per pixel of a whole-slide image's level 0, from its own metadata: Aperio's ImageDescription, OME-XML's
PhysicalSizeX, else the TIFF resolution tags. Pure; the text searched is the file's, so no pattern here
backtracks over it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import tifffile

from pcam_pipeline.core.errors import InvalidInput

# µm/px a scanner can produce (about 100x to 1x); a value outside is a placeholder, such as 72 dpi.
PLAUSIBLE_MPP = (0.05, 20.0)
_APERIO_MPP = re.compile(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)")
# OME-XML is text the file controls: the first <Pixels ...> tag is cut out with str.find, and only then searched
# (a lazy pattern across the whole text backtracked quadratically: 130 KB took 20 s).
_OME_PIXELS_TAG = re.compile(r"<Pixels\s")
_OME_SIZE = re.compile(r'\bPhysicalSizeX="([0-9.eE+-]+)"')
_OME_UNIT = re.compile(r'\bPhysicalSizeXUnit="([^"]+)"')
_MICRONS_PER_OME_UNIT = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}


@dataclass(frozen=True)
class Resolution:
    mpp: float | None  # µm per level-0 pixel, None when the file does not say
    source: str  # where it was read, or why there is none


def check_mpp(mpp: float, where: str) -> float:
    low, high = PLAUSIBLE_MPP
    if not (math.isfinite(mpp) and low <= mpp <= high):
        raise InvalidInput(f"the µm per pixel in {where} is not plausible", f"a number from {low} to {high}", f"{mpp}")
    return mpp


def _ome_pixels_tag(description: str) -> str:
    start = _OME_PIXELS_TAG.search(description)
    if not start:
        return ""
    end = description.find(">", start.start())
    return description[start.start() : end if end >= 0 else len(description)]


def resolution_from_metadata(page: tifffile.TiffPage) -> Resolution:
    """µm per pixel of level 0: Aperio's ImageDescription, OME-XML's PhysicalSizeX, else the TIFF resolution
    tags (inch or cm)."""
    description = page.description or ""
    pixels = _ome_pixels_tag(description) if "<OME" in description[:4096] else ""
    ome = _OME_SIZE.search(pixels)
    if ome:
        unit = _OME_UNIT.search(pixels)
        scale = _MICRONS_PER_OME_UNIT.get(unit.group(1) if unit else "µm")
        try:
            mpp = float(ome.group(1)) * scale if scale else float("nan")
            return Resolution(check_mpp(mpp, "the OME-XML"), "OME-XML PhysicalSizeX")
        except (ValueError, InvalidInput):
            return Resolution(None, f"the OME-XML says PhysicalSizeX {ome.group(1)!r}, not a usable value")
    found = _APERIO_MPP.search(description) if description.startswith("Aperio") else None
    if found:
        try:
            return Resolution(check_mpp(float(found.group(1)), "the Aperio description"), "Aperio description (MPP)")
        except (ValueError, InvalidInput):
            return Resolution(None, f"the Aperio description says MPP = {found.group(1)!r}, not a usable value")
    tags = page.tags
    unit_tag = tags.get("ResolutionUnit")
    x_resolution = tags.get("XResolution")
    microns_per_unit = {2: 25_400.0, 3: 10_000.0}.get(int(unit_tag.value) if unit_tag else 2)
    if x_resolution is None or microns_per_unit is None:
        return Resolution(None, "the file has no resolution tags with a unit")
    try:
        numerator, denominator = x_resolution.value
        mpp = microns_per_unit * denominator / numerator
    except (TypeError, ValueError, ZeroDivisionError):
        return Resolution(None, "the file's XResolution tag is not a number")
    low, high = PLAUSIBLE_MPP
    if not low <= mpp <= high:
        return Resolution(None, f"the TIFF resolution tags say {mpp:.4g} µm per pixel, a placeholder, not a scan")
    return Resolution(mpp, "TIFF resolution tags")
