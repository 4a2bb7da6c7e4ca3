"""How large a lesion of positive tiles is: its greatest dimension, measured on the tile grid. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray


def greatest_distance(points: NDArray[Any]) -> float:
    """The greatest distance between any two of ``points`` (N, 2): between vertices of their convex hull."""
    hull = shapely.get_coordinates(shapely.MultiPoint(points).convex_hull)
    gaps = hull[:, None, :] - hull[None, :, :]
    return float(np.sqrt((gaps**2).sum(axis=2)).max())


SIDES = ((1, 0), (-1, 0), (0, 1), (0, -1))
MIN_CORE_TILES = 4


def core_of(cells: Sequence[tuple[int, int]]) -> list[int]:
    """The lesion without its spurs: the tiles with at least two of their sides on the lesion's own tiles. A
    false positive hanging on by a corner or one side would otherwise lengthen the measure by a tile or two.
    Only a lesion with an inside (a tile surrounded on four sides) has a core; a thin one (a line, a band two
    tiles wide) or a small clump is measured whole."""
    present = set(cells)
    sides = [sum((x + dx, y + dy) in present for dx, dy in SIDES) for x, y in cells]
    core = [i for i, count in enumerate(sides) if count >= 2]
    return core if 4 in sides and len(core) >= MIN_CORE_TILES else list(range(len(cells)))


# A lesion at least this many tile edges across, once opened, is measured on its opened tiles.
MIN_OPENED_EXTENT_EDGES = 8
_BLOCK = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def opened(cells: Sequence[tuple[int, int]]) -> list[int]:
    """The tiles of the lesion that some 3 x 3 block of its tiles covers (a morphological opening): tiles
    attached by a corner, a side or a bridge one or two tiles wide drop out, as false positives beside a
    lesion do; the lesion's own outline stays."""
    present = set(cells)
    centres = {(x, y) for x, y in cells if all((x + dx, y + dy) in present for dx, dy in _BLOCK)}
    return [i for i, (x, y) in enumerate(cells) if any((x - dx, y - dy) in centres for dx, dy in _BLOCK)]


def extent_px(cells: Sequence[tuple[int, int]], centres: NDArray[Any], edge: float) -> float:
    """The greatest dimension of a lesion of tiles at ``cells`` on the grid, with ``centres`` (N, 2) and
    ``edge`` in level-0 pixels.

    A tile is positive when the model sees tumour anywhere in it, so the outermost positive tiles' centres lie
    up to half a tile beyond the lesion's edge. A lesion at least MIN_OPENED_EXTENT_EDGES across is measured
    between the centres of its opened tiles, less half a tile edge for that overhang (measured: within
    -0.5 to +0.9 tile edges of the truth from 1 to 4 mm; bench_slide_verdicts). A smaller lesion, which an
    opening would cut, is measured between the centres of its core, and at least one tile edge."""
    kept = opened(cells)  # none, or at least a 3 x 3 block
    if kept:
        across = greatest_distance(centres[kept])
        if across >= MIN_OPENED_EXTENT_EDGES * edge:
            return across - edge / 2
    core = core_of(cells)
    return max(greatest_distance(centres[core]), edge)
