"""Tiny training runs under a ``tf.distribute`` strategy, each in a fresh process.

A strategy needs its devices before TensorFlow starts (two logical CPUs for ``mirrored``, the
collective runtime for ``multiworker``), so the tests run this module with ``python -m`` and read
one JSON line per run from its output::

    python -m tests.distributed_runs --data DIR --out DIR --strategy mirrored --cpus 2 RUN...

where a RUN is a model name or a JSON object (``RUN_DEFAULTS``): several runs, each with its
own strategy among ``default`` and ``mirrored``, share one process and its start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

#: Models small enough for CI, per family: a few filters, one or two steps.
TINY_MODEL_CONFIG = {
    "filters": 4,
    "dense_units": 8,
    "latent_dim": 3,
    "recurrent_units": 8,
    "num_components": 2,
}


#: What a run may set (``RUN`` JSON keys), with the defaults of a tiny run.
RUN_DEFAULTS = {
    "model": None,
    "strategy": "mirrored",
    "tag": "",  # run folder OUT/<model><tag> (the same on every worker: the chief's)
    "epochs": 1,
    "steps": 2,
    "batch_size": 4,
    "dropout": None,
    "augment": True,
    "mixed_precision": False,
    "interrupt_after": None,  # epochs after which the run stops as if by Ctrl-C
    "resume": False,  # continue the run folder OUT/<model><tag> to ``epochs``
    "encoder": None,  # latent_classifier: a vae run folder (default OUT/vae)
}


def parse_run(text: str, strategy: str) -> dict:
    """``RUN``: a model name, or a JSON object of ``RUN_DEFAULTS`` keys."""
    run = json.loads(text) if text.startswith("{") else {"model": text}
    unknown = set(run) - set(RUN_DEFAULTS)
    if unknown or not run.get("model"):
        raise ValueError(f"a run needs a model and only the keys {list(RUN_DEFAULTS)}: {text}")
    return {**RUN_DEFAULTS, "strategy": strategy, **run}


def tiny_overrides(run: dict, data_dir: str, out: str) -> dict:
    model_config = dict(TINY_MODEL_CONFIG)
    if run["model"] == "latent_classifier":
        model_config["encoder_run"] = run["encoder"] or os.path.join(os.path.dirname(out), "vae")
    if run["dropout"] is not None:
        model_config["dropout_rate"] = run["dropout"]
    return {
        "data": {"data_dir": data_dir, "augment": run["augment"]},
        "model_config": model_config,
        "train": {
            "epochs": run["epochs"],
            "steps_per_epoch": run["steps"],
            "batch_size": run["batch_size"],
            "verbose": 0,
            "patience": 0,
            "out": out,
            "resume": out if run["resume"] else None,
            "strategy": run["strategy"],
            "mixed_precision": run["mixed_precision"],
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", metavar="RUN", help="a model, or a JSON object")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="parent of one run folder per run")
    parser.add_argument("--strategy", default="mirrored", help="of runs that name none")
    parser.add_argument("--cpus", type=int, default=2, help="logical CPU devices to create")
    args = parser.parse_args(argv)
    runs = [parse_run(text, args.strategy) for text in args.runs]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    if args.cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.cpus)]
        )
    import numpy as np

    from stampnet.training.config import apply_overrides
    from stampnet.training.distribute import make_strategy, worker_index
    from stampnet.training.registry import get_spec
    from stampnet.training.trainer import train

    for run in runs:
        out = os.path.join(args.out, run["model"] + run["tag"])
        config = apply_overrides(
            get_spec(run["model"]).preset(), tiny_overrides(run, args.data, out)
        )
        started = time.perf_counter()
        try:
            result = train(config, callbacks=interrupt_after(run["interrupt_after"]))
        except KeyboardInterrupt:
            print("RESULT " + json.dumps({"model": run["model"], "tag": run["tag"],
                                          "interrupted": True}), flush=True)  # fmt: skip
            continue
        weights = result.bundle.model.get_weights()
        strategy = make_strategy(run["strategy"])
        task_type, task_id = worker_index(strategy)
        worker = f"-{task_type}{task_id}" if task_type else ""
        print(
            "RESULT "
            + json.dumps(
                {
                    "model": run["model"],
                    "tag": run["tag"],
                    "strategy": run["strategy"],
                    "run_dir": str(result.run_dir),
                    "replicas": strategy.num_replicas_in_sync,
                    "loss": [float(v) for v in result.history["loss"]],
                    "weights_file": _save_weights(weights, out + worker),
                    "finite": bool(all(np.isfinite(w).all() for w in weights)),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )
    return 0


def interrupt_after(epochs: int | None) -> list:
    """A callback raising ``KeyboardInterrupt`` at the end of epoch ``epochs`` (after the run's
    own callbacks took its backup), as a user's Ctrl-C would; none for None."""
    if epochs is None:
        return []
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epochs:
                raise KeyboardInterrupt

    return [Interrupt()]


def _save_weights(weights, out: str) -> str:
    import numpy as np

    path = os.path.join(out + "-weights.npz")
    np.savez(path, *weights)
    return path


if __name__ == "__main__":
    sys.exit(main())
