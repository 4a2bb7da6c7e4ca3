"""Reading text back from the pictures the pipeline draws (heatmaps, ROC curves), for tests.

The pictures use Pillow's default font, which renders a string the same way wherever it is put. So a
string shows in a picture if its rendering, on the same white background and in the same colour, occurs
in the picture pixel for pixel. No layout is assumed: the test says what a reader must be able to read.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def _rendered(text: str, fill) -> np.ndarray:
    canvas = Image.new("RGB", (8 * len(text) + 40, 40), "white")
    ImageDraw.Draw(canvas).text((10, 10), text, fill=fill)
    pixels = np.asarray(canvas)
    ink = np.argwhere((pixels != 255).any(axis=2))
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
    return pixels[top:bottom, left:right]


def text_positions(png: bytes, text: str, fill="black") -> list[tuple[int, int]]:
    """Where ``text``, drawn in ``fill`` on white, appears in the picture: (left, top) of its ink."""
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    glyphs = _rendered(text, fill)
    height, width = glyphs.shape[:2]
    anchor = tuple(np.argwhere((glyphs != 255).any(axis=2))[0])  # the first inked pixel, top row first
    found = []
    for y, x in np.argwhere((picture == glyphs[anchor]).all(axis=2)):
        top, left = int(y - anchor[0]), int(x - anchor[1])
        if top < 0 or left < 0 or top + height > picture.shape[0] or left + width > picture.shape[1]:
            continue
        if np.array_equal(picture[top : top + height, left : left + width], glyphs):
            found.append((left, top))
    return found


def shows_text(png: bytes, text: str, fill="black") -> bool:
    return bool(text_positions(png, text, fill))
