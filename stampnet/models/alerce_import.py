"""Convert an ALeRCE stamp-classifier TF1 checkpoint into a self-describing stampnet model.

Reads the checkpoint with ``tf.train.load_checkpoint`` (no TF1 graph is rebuilt), infers the
variant from the variables present, builds ``build_stamp_classifier`` with the matching
configuration and copies the weights. The saved ``.keras`` carries the feature names and
statistics (in ``FeatureNormalization``) and the class names (in the output layer), so
``stampnet classify --model MODEL.keras`` needs nothing else.

TF1 conventions checked against ALeRCE's graph (``model.meta``): conv kernels are HWIO and dense
kernels (in, out), as in Keras; the flatten is row-major (H, W, C), as Keras' ``Flatten``; the
rotations are ``np.rot90(x, k, axes=(1, 2))`` stacked on the batch axis; the feature batch norm
uses epsilon 1e-3 (``batchnorm/add/y``); padding is 3 zeros, then VALID 4x4, then SAME convs.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from stampnet.constants import ALERCE_CLASSES
from stampnet.features import FeatureStats

FEATURE_STATS_FILE = "feature_norm_stats.json"
CHECKPOINT_FOLDER = "tf1_checkpoint"
#: ALeRCE layer prefix (without its op counter) -> stampnet layer name.
CONV_LAYERS = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")
DENSE_LAYERS = ("dense_1", "dense_2", "dense_3")
BATCHNORM_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


def find_checkpoint(path: str | Path) -> Path:
    """The folder (or prefix) holding the checkpoint: ``path``, or ``path/tf1_checkpoint``."""
    path = Path(path)
    if (path / CHECKPOINT_FOLDER).is_dir():
        return path / CHECKPOINT_FOLDER
    if path.is_dir() and not (path / "checkpoint").exists() and not any(path.glob("*.index")):
        raise ValueError(
            f"No TF1 checkpoint in {path}: expected a 'checkpoint' file or a '*.index' file, or a "
            f"'{CHECKPOINT_FOLDER}/' sub-folder (ALeRCE's results/<run>/ layout)."
        )
    return path


def read_alerce_variables(checkpoint: str | Path) -> dict[str, np.ndarray]:
    """The trained arrays of an ALeRCE checkpoint keyed by stampnet layer/variable name,
    e.g. ``conv_1/kernel``, ``dense_2/bias``, ``batchnorm_features/moving_mean``."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(find_checkpoint(checkpoint)))
    variables = {}
    for full_name in reader.get_variable_to_shape_map():
        if not full_name.startswith("network/") or "Adam" in full_name:
            continue  # optimizer slots and counters
        parts = full_name.split("/")
        layer = re.sub(r"_\d+$", "", parts[1])  # conv_1_1 -> conv_1, dense_2_12 -> dense_2
        variables[f"{layer}/{parts[-1]}"] = reader.get_tensor(full_name)
    missing = [f"{name}/kernel" for name in (*CONV_LAYERS, "dense_1", "output_logits")]
    missing = [name for name in missing if name not in variables]
    if missing:
        raise ValueError(
            f"{checkpoint} is not an ALeRCE stamp-classifier checkpoint: variables {missing} "
            f"not found among {sorted(variables)}"
        )
    return variables


def stampnet_layer_for(tensor_name: str) -> str | None:
    """The stampnet layer whose output is ALeRCE's graph tensor ``tensor_name`` (as named in the
    reference ``expected_intermediates.npz``), or None for a tensor without a twin.

    ``network/conv_2_2/conv2d/BiasAdd`` -> ``conv_2``, ``network/conv_2_2/Relu`` -> ``conv_2_relu``,
    ``network/down_1_3/MaxPool`` -> ``down_1``, ``inputs/IteratorGetNext`` (the stacked rotations)
    -> ``rotations``, ``outputs/Softmax`` -> ``probabilities``.
    """
    fixed = {
        "inputs/IteratorGetNext": "rotations",
        "inputs/IteratorGetNext__1": "feature_normalization",  # features as fed (z-scored)
        "network/padding": "padding",
        "network/flatten_1_8/Reshape": "flatten",
        "network/cyclic_avg_pool_1_11/Mean": "cyclic_pooling",
        "network/batchnorm_features/batchnorm/add_1": "batchnorm_features",
        "network/dense_with_features": "dense_with_features",
        "network/output_logits/BiasAdd": "output_logits",
        "outputs/Softmax": "probabilities",
    }
    if tensor_name in fixed:
        return fixed[tensor_name]
    match = re.fullmatch(
        r"network/((?:conv|dense|down)_\d)_\d+/(?:.*/)?(BiasAdd|Relu|MaxPool)", tensor_name
    )
    if match is None:
        return None
    layer, op = match.groups()
    return f"{layer}_relu" if op == "Relu" else layer


def _crop_size(flatten_units: int) -> int:
    """Inverts the trunk's geometry: crop c -> pad 3 -> 4x4 VALID -> /2 -> /2 -> x64 channels."""
    for crop_size in (21, 41, 63):
        side = (crop_size + 6 - 3) // 2 // 2
        if side * side * 64 == flatten_units:
            return crop_size
    raise ValueError(f"dense_1 takes {flatten_units} inputs: no crop size 21, 41 or 63 gives it")


def import_alerce_checkpoint(
    checkpoint_dir: str | Path,
    *,
    feature_stats_json: str | Path | None = None,
    class_names=ALERCE_CLASSES,
    name: str | None = None,
    model_version: str | None = None,
):
    """Builds a stampnet stamp classifier holding the weights of an ALeRCE TF1 checkpoint.

    Args:
        checkpoint_dir: a ``tf1_checkpoint/`` folder, a checkpoint prefix, or ALeRCE's run folder
            (or a stampnet reference folder) containing ``tf1_checkpoint/``.
        feature_stats_json: ALeRCE's ``feature_norm_stats.json``; by default looked for beside
            or above the checkpoint. Required when the checkpoint uses features.
        class_names: output classes in ALeRCE's order.
        name: model name (default: the run folder's name).
        model_version: recorded with every prediction (default: "alerce-tf1:<run folder>").

    Returns:
        A ``keras.Model`` from ``build_stamp_classifier`` with the checkpoint's weights.
    """
    from stampnet.models.stamp_classifier import build_stamp_classifier

    checkpoint = find_checkpoint(checkpoint_dir)
    variables = read_alerce_variables(checkpoint)
    run_folder = checkpoint.parent if checkpoint.name == CHECKPOINT_FOLDER else checkpoint
    has_features = "batchnorm_features/gamma" in variables
    # 2020: dense_1 -> pool -> features -> dense_2 -> dense_3; 2019: dense_1 -> dense_2 -> pool.
    pool_after = "dense_1" if "dense_3/kernel" in variables else "dense_2"

    feature_stats = None
    if has_features:
        feature_stats = _load_feature_stats(feature_stats_json, checkpoint, run_folder)
        expected = variables["batchnorm_features/gamma"].shape[0]
        if len(feature_stats.names) != expected:
            raise ValueError(
                f"The checkpoint {checkpoint} normalises {expected} features but "
                f"{feature_stats_json} lists {len(feature_stats.names)}: {feature_stats.names}"
            )
    num_classes = variables["output_logits/kernel"].shape[1]
    if len(class_names) != num_classes:
        raise ValueError(
            f"The checkpoint {checkpoint} has {num_classes} outputs, received "
            f"{len(class_names)} class names {tuple(class_names)}"
        )
    run_name = re.sub(r"\W+", "_", run_folder.resolve().name).strip("_") or "alerce"
    model = build_stamp_classifier(
        class_names=class_names,
        feature_stats=feature_stats,
        crop_size=_crop_size(variables["dense_1/kernel"].shape[0]),
        kernel_size=int(variables["conv_2/kernel"].shape[0]),
        pool_after=pool_after,
        # ALeRCE's 2019 code called dropout in inference mode even while training: none at all.
        dropout_rate=0.5 if pool_after == "dense_1" else 0.0,
        model_version=model_version or f"alerce-tf1:{run_folder.resolve().name}",
        name=name or run_name,
    )
    _assign_weights(model, variables)
    return model


def _load_feature_stats(feature_stats_json, checkpoint: Path, run_folder: Path) -> FeatureStats:
    candidates = [feature_stats_json] if feature_stats_json else []
    candidates += [checkpoint / FEATURE_STATS_FILE, run_folder / FEATURE_STATS_FILE]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return FeatureStats.from_alerce_json(candidate)
    raise ValueError(
        f"The checkpoint {checkpoint} uses metadata features, but no {FEATURE_STATS_FILE} was "
        f"found at {[str(c) for c in candidates]}; pass feature_stats_json (--feature-stats)."
    )


def _assign_weights(model, variables: dict[str, np.ndarray]) -> None:
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        names = BATCHNORM_VARIABLES if layer.name == "batchnorm_features" else ("kernel", "bias")
        keys = [f"{layer.name}/{name}" for name in names]
        missing = [key for key in keys if key not in variables]
        if missing:
            raise ValueError(f"The checkpoint has no {missing} for stampnet layer {layer.name!r}")
        arrays = [variables[key] for key in keys]
        shapes = [tuple(weight.shape) for weight in layer.weights]
        if shapes != [array.shape for array in arrays]:
            raise ValueError(
                f"Layer {layer.name!r} expects weights {shapes}, the checkpoint holds "
                f"{[array.shape for array in arrays]} for {keys}"
            )
        layer.set_weights(arrays)
        used.update(keys)
    unused = sorted(set(variables) - used)
    if unused:
        raise ValueError(f"Checkpoint variables {unused} have no stampnet layer to go to")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="tf1_checkpoint/ folder, or a folder containing one")
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument(
        "--feature-stats", default=None, help=f"ALeRCE's {FEATURE_STATS_FILE} (default: beside)"
    )
    parser.add_argument("--name", default=None, help="model name (default: the run folder)")
    parser.add_argument("--version", default=None, help="model version recorded in predictions")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".keras":
        raise SystemExit(f"--out must end in .keras, received {out}")
    try:
        model = import_alerce_checkpoint(
            args.checkpoint,
            feature_stats_json=args.feature_stats,
            name=args.name,
            model_version=args.version,
        )
    except ValueError as error:
        raise SystemExit(f"stampnet import-alerce: {error}") from error
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    features = model.get_layer("feature_normalization").stats.names if _has_features(model) else ()
    print(
        f"Wrote {out}: model {model.name!r}, {model.count_params():,} parameters, "
        f"{len(features)} features, classes {model.get_layer('probabilities').class_names}"
    )
    return 0


def _has_features(model) -> bool:
    return any(layer.name == "feature_normalization" for layer in model.layers)
