"""Stacking the three cutouts of an alert into one fixed-size stamp with a validity mask.

ZTF cutouts are 63x63 pixels centred on the candidate, except near the edge of a CCD quadrant,
where the cutout is cut off by the image border (e.g. 48x63). Such stamps are padded back to 63x63
on the side where the CCD edge is, so the candidate stays at the centre pixel (31, 31), which is
what centre crops and rotation-invariant models assume. The side is decided from the candidate's
position on the quadrant image: ``xpos``/``ypos`` are 1-based pixel coordinates (SExtractor
convention) on a quadrant of ``QUADRANT_WIDTH`` x ``QUADRANT_HEIGHT`` pixels, and the cutout spans
``round(pos) - 1 +- 31`` in 0-based pixels, clipped to the image. Both facts were read off the 24
truncated alerts of the real sample, where this geometry predicts every truncated shape exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from stampnet.constants import NUM_CHANNELS, STAMP_SIZE

#: Size of a ZTF CCD quadrant image in pixels (NAXIS1 = x, NAXIS2 = y).
QUADRANT_WIDTH = 3072
QUADRANT_HEIGHT = 3080
_HALF = STAMP_SIZE // 2
#: Pixels beyond this magnitude are corrupt, not light: ZTF counts stay below ~1e7, and
#: normalising float32 stamps squares pixel values (3969 squares of 1e15 still fit in float32).
MAX_ABS_PIXEL = 1e15


class StampError(ValueError):
    """Cutouts that cannot be stacked into a valid stamp; the message says why."""


def edge_padding(length: int, position: float, image_size: int) -> tuple[int, int]:
    """Pixels to add (before, after) along one axis to bring a cut-off cutout back to STAMP_SIZE.

    Args:
        length: the cutout's length along this axis (<= STAMP_SIZE).
        position: the candidate's 1-based pixel coordinate along this axis (xpos or ypos).
        image_size: the quadrant image's size along this axis.
    """
    missing = STAMP_SIZE - length
    if missing == 0:
        return 0, 0
    if position is None or not math.isfinite(position):
        raise StampError(
            f"stamp truncated to {length} pixels but the candidate position is missing, "
            "so the side of the CCD edge is unknown"
        )
    centre = round(position) - 1  # 0-based pixel holding the candidate
    before = max(0, _HALF - centre)
    after = max(0, centre + _HALF - (image_size - 1))
    if before + after == missing:
        return before, after
    # Position and shape disagree (another camera geometry?): pad on the side of the nearer edge.
    return (missing, 0) if position < image_size / 2 else (0, missing)


def _check_shapes(cutouts: Sequence[np.ndarray]) -> tuple[int, int]:
    if len(cutouts) != NUM_CHANNELS:
        raise StampError(f"expected {NUM_CHANNELS} cutouts, got {len(cutouts)}")
    shapes = [np.shape(cutout) for cutout in cutouts]
    if any(len(shape) != 2 for shape in shapes):
        raise StampError(f"cutouts must be 2-D images, got shapes {shapes}")
    if len(set(shapes)) != 1:
        raise StampError(f"cutouts have different shapes {shapes}; expected one shared shape")
    height, width = shapes[0]
    if not (0 < height <= STAMP_SIZE and 0 < width <= STAMP_SIZE):
        raise StampError(
            f"unexpected stamp shape {height}x{width}: expected at most {STAMP_SIZE}x{STAMP_SIZE}"
        )
    return height, width


def stack_stamps(
    cutouts: Sequence[np.ndarray], xpos: float | None = None, ypos: float | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Stacks (science, template, difference) into a (63, 63, 3) stamp and its validity mask.

    Args:
        cutouts: three 2-D float arrays of one shared shape, indexed [y, x] as FITS stores them.
        xpos, ypos: the candidate's 1-based position on the quadrant; needed only for truncated
            stamps, to pad them on the side of the CCD edge.

    Returns:
        ``(stamps, mask, original_shape)``: float32 stamps with invalid pixels (NaN, inf, beyond
        ``MAX_ABS_PIXEL``, padding) set to 0.0, a bool mask that is True on valid pixels, and
        the cutouts' shape.

    Raises:
        StampError: wrong number of cutouts, not 2-D, mismatched or too large shapes, a truncated
            stamp without a candidate position, or a channel with no valid pixel.
    """
    height, width = _check_shapes(cutouts)
    stacked = np.stack(cutouts, axis=-1).astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        valid = np.abs(stacked) <= MAX_ABS_PIXEL  # False for NaN and inf too
    if not valid.all():
        stacked[~valid] = 0.0
        empty = [index for index in range(NUM_CHANNELS) if not valid[..., index].any()]
        if empty:
            raise StampError(
                f"channel(s) {empty} hold no valid pixel (finite, |value| <= {MAX_ABS_PIXEL:g})"
            )
    if (height, width) == (STAMP_SIZE, STAMP_SIZE):
        return stacked, valid, (height, width)

    top, bottom = edge_padding(height, ypos, QUADRANT_HEIGHT)
    left, right = edge_padding(width, xpos, QUADRANT_WIDTH)
    stamps = np.zeros((STAMP_SIZE, STAMP_SIZE, NUM_CHANNELS), dtype=np.float32)
    mask = np.zeros((STAMP_SIZE, STAMP_SIZE, NUM_CHANNELS), dtype=bool)
    stamps[top : STAMP_SIZE - bottom, left : STAMP_SIZE - right] = stacked
    mask[top : STAMP_SIZE - bottom, left : STAMP_SIZE - right] = valid
    return stamps, mask, (height, width)
