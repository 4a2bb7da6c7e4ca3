"""Image features for the local CPU model. Pure numpy, vectorised over batches of patches.

The built-in algorithm learns a ResNet from pixels; the local stand-in uses what a pathologist looks
at: how much dark (haematoxylin) material there is, how large and pale-cored the nuclei are, and
whether that differs between the patch's centre 32x32 region (which decides the label) and its rim.
"""

from __future__ import annotations

import numpy as np

GRAY_BINS = np.array([60, 90, 120, 150, 180, 210], np.float32)


def _region_stats(rgb: np.ndarray) -> list[np.ndarray]:
    """Colour, darkness and texture statistics of a (B, H, W, 3) float32 region."""
    gray = rgb.mean(axis=3)
    flat = gray.reshape(len(gray), -1)
    stats = [
        rgb.mean(axis=(1, 2)),
        rgb.std(axis=(1, 2)),
        flat.mean(axis=1, keepdims=True),
        flat.std(axis=1, keepdims=True),
    ]
    stats.append(np.stack([(flat < edge).mean(axis=1) for edge in GRAY_BINS], axis=1))
    purple = (rgb[..., 2] - rgb[..., 1]).reshape(len(rgb), -1)
    stats.append(np.stack([(purple > edge).mean(axis=1) for edge in (30, 50, 70)], axis=1))
    gy, gx = np.abs(np.diff(gray, axis=1)), np.abs(np.diff(gray, axis=2))
    stats.append(np.stack([gy.mean(axis=(1, 2)), gx.mean(axis=(1, 2))], axis=1))
    # Large nuclei leave dark pixels whose 4x4 block is mostly dark; small lymphocytes do not.
    blocks = (gray < 150).reshape(len(gray), gray.shape[1] // 4, 4, gray.shape[2] // 4, 4).mean(axis=(2, 4))
    stats.append(np.stack([(blocks > level).mean(axis=(1, 2)) for level in (0.5, 0.75, 0.95)], axis=1))
    return stats


def patch_features(patches: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(N, 96, 96, 3) uint8 → (N, F) float32: statistics of the centre, the rim and their difference."""
    rows = []
    for first in range(0, len(patches), batch):
        block = patches[first : first + batch].astype(np.float32)
        centre = np.concatenate(_region_stats(block[:, 32:64, 32:64]), axis=1)
        whole = np.concatenate(_region_stats(block), axis=1)
        rows.append(np.concatenate([centre, whole, centre - whole], axis=1))
    return np.concatenate(rows).astype(np.float32)
