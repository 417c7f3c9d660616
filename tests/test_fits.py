"""The fast cutout decoder equals astropy on every real stamp and fails clearly on bad bytes."""

from __future__ import annotations

import gzip
import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

from stampnet.constants import CUTOUT_FIELDS
from stampnet.data import fits as stamp_fits
from stampnet.data.readers import iter_packets


def astropy_reference(stamp: bytes) -> np.ndarray:
    """The README's decoding recipe (old stamps make astropy warn about their SIMPLE card)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        with fits.open(io.BytesIO(gzip.decompress(stamp))) as hdul:
            return hdul[0].data.astype(np.float32)


def gzipped_fits(data: np.ndarray, **header) -> bytes:
    hdu = fits.PrimaryHDU(data)
    for key, value in header.items():
        hdu.header[key] = value
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return gzip.compress(buffer.getvalue())


@pytest.fixture(scope="module")
def real_stamp() -> bytes:
    stamp = np.arange(63 * 63, dtype=np.float32).reshape(63, 63)
    stamp[3, 5] = np.nan
    return gzipped_fits(stamp)


def test_fast_decoder_equals_astropy_on_every_stamp_of_the_sample(ztf_dir):
    decoded = fast = 0
    for source, packet in iter_packets(ztf_dir, columns=CUTOUT_FIELDS + ("candid",)):
        for field in CUTOUT_FIELDS:
            stamp = packet[field]["stampData"]
            expected = astropy_reference(stamp)
            result = stamp_fits.decode_cutout(stamp)
            assert result.dtype == np.float32 and result.flags.c_contiguous
            # assert_array_equal treats NaN as equal only where both arrays hold NaN.
            np.testing.assert_array_equal(result, expected, err_msg=f"{source} {field}")
            decoded += 1
            fast += stamp_fits._fast_decode(stamp_fits.gunzip(stamp)) is not None
    assert decoded == 2024 * 3
    assert fast == decoded, "every real ZTF stamp should take the fast path, not astropy"


def test_round_trip_of_a_written_stamp_keeps_nan_positions(real_stamp):
    result = stamp_fits.decode_cutout(real_stamp)
    assert result.shape == (63, 63)
    assert np.isnan(result[3, 5]) and np.isnan(result).sum() == 1
    assert result[1, 0] == 63.0  # FITS rows are y: NAXIS1 (x) varies fastest


@pytest.fixture(params=stamp_fits.INFLATE_BACKENDS, ids=lambda module: module.__name__)
def backend(request):
    return request.param


def test_every_inflate_backend_gives_the_same_bytes(real_stamp, backend):
    assert stamp_fits.gunzip(real_stamp, backend) == gzip.decompress(real_stamp)


def test_truncated_gzip_is_rejected(real_stamp, backend):
    with pytest.raises(stamp_fits.FitsError, match="truncated gzip"):
        stamp_fits.gunzip(real_stamp[: len(real_stamp) // 2], backend)
    with pytest.raises(stamp_fits.FitsError, match="truncated gzip"):
        stamp_fits.decode_cutout(real_stamp[: len(real_stamp) // 2])


def test_corrupt_gzip_is_rejected(real_stamp, backend):
    corrupt = bytearray(real_stamp)
    corrupt[20:40] = b"\xff" * 20
    with pytest.raises(stamp_fits.FitsError, match="corrupt gzip"):
        stamp_fits.gunzip(bytes(corrupt), backend)
    with pytest.raises(stamp_fits.FitsError, match="corrupt gzip"):
        stamp_fits.decode_cutout(bytes(corrupt))


@pytest.mark.parametrize(
    "data",
    [b"", b"not a fits file at all", gzip.compress(b"hello world" * 400, mtime=0), b"\x00" * 5000],
    ids=["empty", "text", "gzip-of-text", "zeros"],
)
def test_bytes_that_are_not_fits_are_rejected(data):
    with pytest.raises(stamp_fits.FitsError, match="FITS|empty"):
        stamp_fits.decode_cutout(data)


def test_non_bytes_are_rejected():
    with pytest.raises(stamp_fits.FitsError, match="expected cutout bytes, got int"):
        stamp_fits.decode_cutout(12)


def test_data_shorter_than_the_header_says_is_rejected():
    raw = gzip.decompress(gzipped_fits(np.ones((63, 63), np.float32)))
    with pytest.raises(stamp_fits.FitsError, match="truncated"):
        stamp_fits.decode_cutout(gzip.compress(raw[: 2880 + 1000]))


@pytest.mark.parametrize("shape", [(48, 63), (63, 41), (1, 1)])
def test_non_square_sizes_decode_with_y_first(shape):
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(stamp_fits.decode_cutout(gzipped_fits(data)), data)


def test_three_dimensional_image_is_rejected():
    with pytest.raises(stamp_fits.FitsError, match="2-D"):
        stamp_fits.decode_cutout(gzipped_fits(np.ones((2, 5, 5), np.float32)))


def test_header_without_data_is_rejected():
    buffer = io.BytesIO()
    fits.PrimaryHDU().writeto(buffer)
    with pytest.raises(stamp_fits.FitsError, match="no image data"):
        stamp_fits.decode_cutout(gzip.compress(buffer.getvalue()))


@pytest.mark.parametrize(
    "data, header",
    [
        (np.arange(20, dtype=np.int16).reshape(4, 5), {"BSCALE": 0.5, "BZERO": 10.0}),
        (np.arange(20, dtype=np.float64).reshape(4, 5) / 3, {}),
        (np.arange(20, dtype=np.int32).reshape(5, 4), {}),
    ],
)
def test_unusual_fits_falls_back_to_astropy(data, header):
    stamp = gzipped_fits(data, **header)
    assert stamp_fits._fast_decode(gzip.decompress(stamp)) is None
    np.testing.assert_array_equal(stamp_fits.decode_cutout(stamp), astropy_reference(stamp))


def test_uncompressed_fits_is_accepted(real_stamp):
    raw = gzip.decompress(real_stamp)
    np.testing.assert_array_equal(
        stamp_fits.decode_cutout(raw), stamp_fits.decode_cutout(real_stamp)
    )
