"""Tiny training runs under a ``tf.distribute`` strategy, each in a fresh process.

A strategy needs its devices before TensorFlow starts (two logical CPUs for ``mirrored``, the
collective runtime for ``multiworker``), so the tests run this module with ``python -m`` and read
one JSON line per run from its output::

    python -m tests.distributed_runs --data DIR --out DIR --strategy mirrored --cpus 2 MODEL...
"""

from __future__ import annotations

import argparse
import json
import os
import sys

#: Models small enough for CI, per family: a few filters, one or two steps.
TINY_MODEL_CONFIG = {
    "filters": 4,
    "dense_units": 8,
    "latent_dim": 3,
    "recurrent_units": 8,
    "num_components": 2,
}


def tiny_overrides(model: str, data_dir: str, out: str, args: argparse.Namespace) -> dict:
    model_config = dict(TINY_MODEL_CONFIG)
    if model == "latent_classifier":  # its encoder: the given run, or the vae run of this call
        model_config["encoder_run"] = args.encoder or os.path.join(args.out, "vae")
    if args.dropout is not None:
        model_config["dropout_rate"] = args.dropout
    return {
        "data": {"data_dir": data_dir, "augment": not args.no_augment},
        "model_config": model_config,
        "train": {
            "epochs": args.epochs,
            "steps_per_epoch": args.steps,
            "batch_size": args.batch_size,
            "verbose": 0,
            "patience": 0,
            "out": out,
            "strategy": args.strategy,
            "mixed_precision": args.mixed_precision,
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="parent of one run folder per model")
    parser.add_argument("--strategy", default="mirrored")
    parser.add_argument("--cpus", type=int, default=2, help="logical CPU devices to create")
    parser.add_argument("--encoder", default=None, help="latent_classifier: a vae run folder")
    parser.add_argument("--tag", default="", help="suffix of the weights file (one per worker)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--mixed-precision", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    if args.cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.cpus)]
        )
    import numpy as np

    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec
    from stampnet.training.trainer import train

    for model in args.models:
        out = os.path.join(args.out, model)
        config = apply_overrides(
            get_spec(model).preset(), tiny_overrides(model, args.data, out, args)
        )
        trace = WeightTrace()
        result = train(config, callbacks=[trace])
        weights = result.bundle.model.get_weights()
        print(
            "RESULT "
            + json.dumps(
                {
                    "model": model,
                    "run_dir": str(result.run_dir),
                    "replicas": result.bundle.model.distribute_strategy.num_replicas_in_sync,
                    "loss": [float(v) for v in result.history["loss"]],
                    "weights_file": _save_weights(weights, out + args.tag),
                    "weight_sums": trace.sums,
                    "finite": bool(all(np.isfinite(w).all() for w in weights)),
                }
            ),
            flush=True,
        )
    return 0


class WeightTrace:
    """Sum of |weights| at the start and after every training batch (where runs part ways)."""

    def __new__(cls):
        import keras

        class _Trace(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.sums = []

            def _record(self):
                import numpy as np

                self.sums.append(float(sum(np.abs(w).sum() for w in self.model.get_weights())))

            def on_train_begin(self, logs=None):
                self._record()

            def on_train_batch_end(self, batch, logs=None):
                self._record()

        return _Trace()


def _save_weights(weights, out: str) -> str:
    import numpy as np

    path = os.path.join(out + "-weights.npz")
    np.savez(path, *weights)
    return path


if __name__ == "__main__":
    sys.exit(main())
