"""What the fuzzer checks in each case: no crash, no NaN, nothing lost; model inputs finite.

``check_file`` reads one mutated file (in the worker, ``stampnet.testing.fuzz_worker``) and
returns its findings as a JSON-ready dict; ``tensor_problems`` checks one yielded alert's arrays;
``check_model_inputs`` runs a sample of the alerts through the model input layers (in the parent,
``stampnet.testing.fuzz.run_fuzz``).
"""

from __future__ import annotations

import base64
import traceback
import warnings
from pathlib import Path

import numpy as np

from stampnet.constants import STAMP_SHAPE
from stampnet.features import METADATA_FIELDS


def tensor_problems(alert) -> list[str]:
    """What is wrong with the arrays of one yielded ``Alert`` (empty when all is well)."""
    problems = []
    stamps, mask, metadata = alert.stamps, alert.stamp_mask, alert.metadata
    expected = STAMP_SHAPE if len(alert.channels) == 3 else stamps.shape  # own data: its own
    if stamps.ndim != 3 or stamps.shape != expected or stamps.dtype != np.float32:
        problems.append(f"stamps {stamps.dtype}{stamps.shape}")
    elif not np.isfinite(stamps).all():
        problems.append("non-finite stamp pixels")
    if mask.shape != stamps.shape or mask.dtype != bool:
        problems.append(f"mask {mask.dtype}{mask.shape}")
    elif stamps.shape == mask.shape and np.any(stamps[~mask] != 0):
        problems.append("invalid pixels not zeroed")
    if np.isinf(metadata).any():
        problems.append("inf in metadata")
    return problems


def check_file(path: Path, sample: bool, mapping: dict | None = None) -> dict:
    """Reads one fuzz file (``iter_alerts``; own data: ``AlertReader`` with its ``mapping``);
    returns the findings as a JSON-ready dict. Rejections must name the file or its folder."""
    from stampnet.data.alert import RejectionLog, RejectionWarning
    from stampnet.data.readers import iter_alerts

    if mapping is not None:
        from stampnet.data.mapping import DataMapping
        from stampnet.data.own import AlertReader

        read = AlertReader(mapping=DataMapping.from_dict(mapping))
    else:
        read = iter_alerts
    rejections = RejectionLog(warn=False)
    result = {"alerts": 0, "crash": None, "tensors": [], "sample": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectionWarning)
        try:
            for alert in read([str(path)], rejections=rejections):
                result["alerts"] += 1
                result["tensors"].extend(tensor_problems(alert))
                if sample and len(result["sample"]) < 2 and not result["tensors"]:
                    result["sample"].append(_encode_arrays(alert))
        except Exception:  # the finding itself: an exception escaped the reader
            result["crash"] = traceback.format_exc(limit=-3)[-1500:]
    result["rejections"] = len(rejections)
    where = str(path if mapping is None else path.parent)
    named = any(str(rejection.source).startswith(where) for rejection in rejections)
    result["lost"] = result["alerts"] == 0 and not named
    return result


def _encode_arrays(alert) -> dict:
    encoded = {
        name: base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()
        for name, value in (
            ("stamps", alert.stamps.astype(np.float32)),
            ("mask", alert.stamp_mask.astype(np.float32)),
            ("metadata", alert.metadata.astype(np.float64)),
        )
    }
    return {**encoded, "shape": list(alert.stamps.shape)}


def _decode_arrays(encoded: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def array(name, dtype):
        return np.frombuffer(base64.b64decode(encoded[name]), dtype)

    shape = tuple(encoded["shape"])
    return (
        array("stamps", np.float32).reshape(shape),
        array("mask", np.float32).reshape(shape),
        array("metadata", np.float64),
    )


def check_model_inputs(samples: list[dict]) -> list[tuple[int, str]]:
    """(case index, layer) of the sampled alerts whose model inputs hold NaN or inf."""
    if not samples:
        return []
    from stampnet.features import NO_MATCH_ENCODINGS, FeatureStats
    from stampnet.layers.preprocessing import FeatureNormalization, StampPreprocessing

    # The ZTF geometry and metadata vector (own data of other shapes: checked in the alert tensors).
    samples = [s for s in samples if tuple(s["shape"]) == STAMP_SHAPE]
    arrays = [_decode_arrays(sample) for sample in samples]
    arrays = [item for item in arrays if item[2].shape == (len(METADATA_FIELDS),)]
    if not arrays:
        return []
    stamps = np.stack([stamp for stamp, _, _ in arrays])
    masks = np.stack([mask for _, mask, _ in arrays])
    metadata = np.stack([values for _, _, values in arrays])
    present = np.isfinite(metadata)
    raw_features = np.where(present, metadata, np.nan).astype(np.float32)
    outputs = {
        "minmax stamps": StampPreprocessing(crop_size=21, normalisation="minmax")(stamps, masks),
        "standardized stamps": StampPreprocessing(crop_size=63, normalisation="standardize")(
            stamps, masks
        ),
    }
    # Both readings of a missing catalogue match: ALeRCE's clipping and the recipe's default.
    for no_match in NO_MATCH_ENCODINGS:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of the sample
            stats = FeatureStats.fit(METADATA_FIELDS, metadata, no_match=no_match)
        outputs[f"features ({no_match})"] = FeatureNormalization(stats)(raw_features)
    bad = {}
    for layer, output in outputs.items():
        values = np.asarray(output).reshape(len(samples), -1)
        for row in np.flatnonzero(~np.isfinite(values).all(axis=1)):
            bad.setdefault(samples[row]["index"], []).append(layer)
    return [(index, ", ".join(layers)) for index, layers in sorted(bad.items())]
