"""Channels derived from the others, for data that lack them (``--derive-snr``).

The Deep-HiTS real/bogus classifier (Cabrera-Vives et al. 2017) reads a fourth channel, the
difference image divided by its noise ("SNR difference"). Databases that hold only science,
template and difference stamps (ZTF alerts among them) can have one computed here:

    snr_difference = difference / (1.4826 * MAD(difference over valid pixels))

MAD is the median absolute deviation from the median; 1.4826 * MAD estimates the standard
deviation of Gaussian noise while ignoring the source at the centre, cosmic rays and bad
subtraction residuals, which would inflate a plain standard deviation. One noise value per stamp:
the difference stamp's noise is nearly uniform over a 21..63 pixel cutout. Invalid pixels stay
0 and keep the difference's mask.
"""

from __future__ import annotations

import numpy as np

#: Converts a median absolute deviation into a Gaussian standard deviation (1 / Phi^-1(3/4)).
MAD_TO_SIGMA = 1.4826
SNR_CHANNEL = "snr_difference"


class DerivationError(ValueError):
    """A derived channel that cannot be computed (no valid pixel, zero noise); says why."""


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 * MAD of ``values`` (1-D, finite); the standard deviation where MAD is 0."""
    median = np.median(values)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    if sigma > 0:
        return sigma
    return float(np.std(values))  # mostly constant stamps (e.g. mostly saturated): best effort


def snr_difference(difference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The difference stamp divided by its robust noise; float32, 0 where ``mask`` is False.

    Raises:
        DerivationError: the stamp has no valid pixel or no noise (all valid pixels equal).
    """
    difference = np.asarray(difference, np.float64)
    mask = np.asarray(mask, bool)
    valid = difference[mask]
    if valid.size == 0:
        raise DerivationError("the difference stamp has no valid pixel to estimate its noise")
    sigma = robust_sigma(valid)
    if not sigma > 0:
        raise DerivationError("the difference stamp has no noise (all valid pixels are equal)")
    return np.where(mask, difference / sigma, 0.0).astype(np.float32)


def add_snr_channel(
    stamps: np.ndarray, mask: np.ndarray, channels: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Appends ``snr_difference`` (from the ``difference`` channel) to (H, W, C) stamps."""
    if SNR_CHANNEL in channels:
        raise DerivationError(f"the data already has a {SNR_CHANNEL!r} channel")
    if "difference" not in channels:
        raise DerivationError(
            f"deriving {SNR_CHANNEL} needs a 'difference' channel; got {channels}"
        )
    index = channels.index("difference")
    snr = snr_difference(stamps[..., index], mask[..., index])
    stamps = np.concatenate([stamps, snr[..., None]], axis=-1)
    mask = np.concatenate([mask, mask[..., index : index + 1]], axis=-1)
    return stamps, mask, (*channels, SNR_CHANNEL)
