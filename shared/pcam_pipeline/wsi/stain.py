"""H&E stain vectors and Macenko normalisation. Pure numpy.

Macenko et al., "A method for normalizing histology slides for quantitative analysis", ISBI 2009:

1. optical density (OD) per channel, Beer-Lambert (``brightfield.optical_density``, log10);
2. drop pixels whose mean OD over the channels is below β = 0.15 (glass and faint background);
3. the plane of the two largest eigenvectors of the OD covariance holds both stains;
4. the stains are the directions at the α = 1st and 99th percentiles of the angle in that plane
   (haematoxylin is the one with more red OD);
5. each pixel's concentrations solve OD = C · vectors (least squares); the 99th percentile of each is the
   stain's maximum.

Normalising maps a patch's concentrations onto a reference's vectors and maxima: the image of the same tissue as
the reference's stain would show it. torchstain's numpy backend (EIDOSLAB/torchstain) needs only numpy, but its
estimate is private (name-mangled) and takes one image: the pipeline estimates from OD samples pooled over a
file's shards and compares vectors, so the method is written here; it also solves concentrations with the 3 x 2
pseudo-inverse, not a least-squares call per image (bench/bench_tile_checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.wsi.brightfield import optical_density

BETA = 0.15  # mean OD below this: glass
ALPHA = 1.0  # percentile of the angle that makes each stain direction robust to outliers
MIN_STAINED_PIXELS = 500  # fewer: no estimate (a slide or shard almost without tissue)
MAX_PIXELS = 200_000  # a fixed, spread sample: the estimate's cost does not grow with the slide


@dataclass(frozen=True)
class Stain:
    """Unit OD vectors of haematoxylin and eosin (R, G, B) and the 99th percentile of each concentration."""

    haematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]
    max_concentrations: tuple[float, float]

    @property
    def matrix(self) -> NDArray[Any]:
        return np.array([self.haematoxylin, self.eosin], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "haematoxylin": [round(v, 5) for v in self.haematoxylin],
            "eosin": [round(v, 5) for v in self.eosin],
            "max_concentrations": [round(v, 5) for v in self.max_concentrations],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Stain:
        return cls(tuple(body["haematoxylin"]), tuple(body["eosin"]), tuple(body["max_concentrations"]))


# The reference patches are normalised to: Macenko's reference as the HEnorm implementation (schaugf/HEnorm_python,
# MIT) gives it, its maxima converted from natural-log OD to this module's log10 OD (÷ ln 10).
REFERENCE = Stain((0.5626, 0.7201, 0.4062), (0.2159, 0.8012, 0.5581), (1.9705 / np.log(10), 1.0308 / np.log(10)))


def _unit(vector: NDArray[Any]) -> NDArray[Any]:
    unit: NDArray[Any] = vector / np.linalg.norm(vector)
    return unit if unit.sum() >= 0 else -unit


def stained_od(rgb: NDArray[Any]) -> NDArray[Any]:
    """The OD (n, 3) of the stained pixels of an image or a stack of them, at most MAX_PIXELS, evenly spread."""
    od = optical_density(rgb).reshape(-1, 3)
    od = od[od.mean(axis=1) >= BETA]
    step = max(1, len(od) // MAX_PIXELS)
    sampled: NDArray[Any] = od[::step].astype(np.float64)
    return sampled


def estimate_stain(od: NDArray[Any]) -> Stain | None:
    """The H&E stain of stained pixels' OD (``stained_od``); None with fewer than MIN_STAINED_PIXELS."""
    if len(od) < MIN_STAINED_PIXELS:
        return None
    _, vectors = np.linalg.eigh(np.cov(od.T))
    plane = vectors[:, [2, 1]]  # the two largest
    plane *= np.where(plane.sum(axis=0) < 0, -1, 1)  # point into positive OD
    projected = od @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [ALPHA, 100 - ALPHA])
    first = _unit(plane @ np.array([np.cos(low), np.sin(low)]))
    second = _unit(plane @ np.array([np.cos(high), np.sin(high)]))
    haematoxylin, eosin = (first, second) if first[0] > second[0] else (second, first)
    matrix = np.array([haematoxylin, eosin])
    maxima = np.percentile(_least_squares(od, matrix), 99, axis=0)
    return Stain(
        tuple(float(v) for v in haematoxylin),  # type: ignore[arg-type]
        tuple(float(v) for v in eosin),  # type: ignore[arg-type]
        (float(maxima[0]), float(maxima[1])),
    )


def _least_squares(od: NDArray[Any], matrix: NDArray[Any]) -> NDArray[Any]:
    """Each row's concentrations c minimising |od - c · matrix|: one product with the 3 x 2 pseudo-inverse (the
    same solution as lstsq per pixel, 10x faster on a patch)."""
    solved: NDArray[Any] = od @ np.linalg.pinv(matrix)
    return solved


def angles_degrees(stain: Stain, reference: Stain) -> tuple[float, float]:
    """The angle of each stain vector from the reference's: haematoxylin, eosin."""
    cosines = np.clip((stain.matrix * reference.matrix).sum(axis=1), -1, 1)
    h, e = np.degrees(np.arccos(cosines))
    return float(h), float(e)


def concentrations(rgb: NDArray[Any], stain: Stain) -> NDArray[Any]:
    """Each pixel's (haematoxylin, eosin) concentration under ``stain``: shape (height, width, 2)."""
    od = optical_density(rgb).reshape(-1, 3).astype(np.float64)
    solved = _least_squares(od, stain.matrix)
    shaped: NDArray[Any] = solved.reshape(*rgb.shape[:-1], 2)
    return shaped


def normalise(rgb: NDArray[Any], source: Stain, reference: Stain = REFERENCE) -> NDArray[Any]:
    """The image as ``reference``'s stain would show it: concentrations under ``source`` scaled to the reference's
    maxima, recomposed with its vectors. Glass stays glass."""
    scaled = concentrations(rgb, source) * (np.array(reference.max_concentrations) / source.max_concentrations)
    od = np.clip(scaled, 0, None) @ reference.matrix
    pixels = 256 * np.power(10.0, -od) - 1  # inverse of optical_density
    out: NDArray[Any] = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------- at conversion, for training and scoring alike
NORMALISATIONS = ("none", "macenko")  # StainNormalisation
SAMPLE_PER_PATCH = 64  # stained pixels each patch gives its file's stain estimate
SHARD_SAMPLE_PIXELS = 50_000  # what a shard keeps of them, evenly spread: 300 KB as float16, whatever its size
RANGE_PART_PIXELS = 20_000  # stained pixels of each part a training range is measured on: some 300 patches
TOLERANCE_DEGREES = 5.0  # the least range a training stain is given: angles within it are the same stain


def patch_sample(patch: NDArray[Any]) -> NDArray[Any]:
    """Up to SAMPLE_PER_PATCH stained pixels' OD of one patch, evenly spread, before any normalisation."""
    od = stained_od(patch)
    step = max(1, len(od) // SAMPLE_PER_PATCH)
    sample: NDArray[Any] = od[::step][:SAMPLE_PER_PATCH].astype(np.float32)
    return sample


def shard_sample(patch_samples: list[NDArray[Any]]) -> NDArray[Any]:
    """A conversion shard's patches' samples as it stores them: at most SHARD_SAMPLE_PIXELS, float16."""
    od = np.concatenate(patch_samples) if patch_samples else np.empty((0, 3))
    step = max(1, -(-len(od) // SHARD_SAMPLE_PIXELS))
    kept: NDArray[Any] = od[::step].astype(np.float16)
    return kept


def as_normalised(patch: NDArray[Any], method: str) -> NDArray[Any]:
    """The one function training and scoring patches go through (StainNormalisation). ``macenko``: the patch's
    own stain (as torchstain estimates each image's) mapped onto REFERENCE; a patch with too little stain for an
    estimate is left as it is."""
    if method == "none":
        return patch
    own = estimate_stain(stained_od(patch))
    return patch if own is None else normalise(patch, own)


# ---------------------------------------------------------------- the training range and a slide against it
def _combined(samples: list[NDArray[Any]]) -> NDArray[Any]:
    od = np.concatenate(samples) if samples else np.empty((0, 3))
    step = max(1, len(od) // MAX_PIXELS)
    combined: NDArray[Any] = od[::step].astype(np.float64)
    return combined


def _parts(shard_samples: list[NDArray[Any]]) -> list[NDArray[Any]]:
    """Consecutive shards pooled until each part holds RANGE_PART_PIXELS: a part's estimate varies with its
    tissue, not with how small PatchesPerShard makes a shard."""
    parts, pending = [], []
    for sample in shard_samples:
        pending.append(sample)
        if sum(len(s) for s in pending) >= RANGE_PART_PIXELS:
            parts.append(_combined(pending))
            pending = []
    return parts or ([_combined(pending)] if pending else [])


def training_reference(shard_samples: list[NDArray[Any]], normalisation: str) -> dict[str, Any]:
    """A train split's stain and the range it spans: the widest angle of any part's own estimate from the
    split's (``_parts``), at least TOLERANCE_DEGREES; and how its patches were converted (with the reference
    stain they were normalised to). No stain (None) if the split had too little stained tissue, or was converted
    before stain was sampled."""
    converted = {
        "normalisation": normalisation,
        "normalised_to": REFERENCE.to_json() if normalisation != "none" else None,
    }
    overall = estimate_stain(_combined(shard_samples))
    if overall is None:
        return {"stain": None, "range_degrees": None, **converted}
    parts = [found for part in _parts(shard_samples) if (found := estimate_stain(part))]
    spread = max((max(angles_degrees(found, overall)) for found in parts), default=0.0)
    return {
        "stain": overall.to_json(),
        "range_degrees": round(max(spread, TOLERANCE_DEGREES), 2),
        **converted,
    }


def slide_stain(
    shard_samples: list[NDArray[Any]], training: dict[str, Any] | None, normalisation: str
) -> dict[str, Any]:
    """A slide's stain, its angles to its model's training stain, whether it lies outside that range, and a
    ``mismatch`` if its patches were converted otherwise than the model's training patches. Pure: the summary's
    ``stain`` object (docs/labs.md, "Stain")."""
    model_normalisation = training.get("normalisation", "none") if training else None
    body: dict[str, Any] = {"estimated": False, "normalisation": normalisation,
                            "model_normalisation": model_normalisation, "training_angles_degrees": None,
                            "distance_degrees": None, "training_range_degrees": None, "outside_training_range": None,
                            "mismatch": None}  # fmt: skip
    if model_normalisation not in (None, normalisation):
        body["mismatch"] = (
            f"the slide's patches were converted with StainNormalisation {normalisation}, its model was trained "
            f"on {model_normalisation} patches: drop the slide again or retrain"
        )
    found = estimate_stain(_combined(shard_samples))
    if found is None:
        return body | {
            "reason": "too little stained tissue to estimate the stain, or converted before stain was sampled"
        }
    body |= {"estimated": True, **found.to_json()}
    if training and training["stain"]:
        angles = angles_degrees(found, Stain.from_json(training["stain"]))
        distance = max(angles)
        body |= {
            "training_angles_degrees": [round(angle, 2) for angle in angles],
            "distance_degrees": round(distance, 2),
            "training_range_degrees": training["range_degrees"],
            "outside_training_range": distance > training["range_degrees"],
        }
    return body
