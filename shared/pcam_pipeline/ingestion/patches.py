"""Patch pixels to JPEG bytes. Pure."""

from __future__ import annotations

import io
from typing import Any

from numpy.typing import NDArray
from PIL import Image


def encode_jpeg(patch: NDArray[Any], quality: int, resize_to: int = 0) -> bytes:
    """Encode one (H, W, 3) uint8 patch; ``resize_to`` > 0 scales it to a square of that edge."""
    image = Image.fromarray(patch)
    if resize_to and image.size != (resize_to, resize_to):
        image = image.resize((resize_to, resize_to), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def image_shape(resize_to: int) -> tuple[int, int, int]:
    """Channels-first shape of the converted JPEGs, as SageMaker's image_shape wants it."""
    edge = resize_to or 96
    return (3, edge, edge)
