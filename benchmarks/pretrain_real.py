"""VAE pre-trained on the real sample's unlabelled stamps vs on built-in data, by latent classifier.

Usage:
    python benchmarks/pretrain_real.py [--size 400] [--epochs 8] [--steps-per-epoch 25]
        [--seeds 0 1 2] [--classifier-epochs 30] [--out pretrain_real]

The labelled alerts of ``../shared/data/ztf`` are split by objectId as ``benchmarks/kshot.py``
does (same ``--eval-fraction``, same evaluation alerts). Two VAEs of the ``--model vae`` preset
architecture are trained for the same number of batches: one on every real alert of the sample
(labelled or not, about 2,000) except the evaluation objects, one on the built-in simulated data
(``--size`` objects, training split). On each frozen encoder the latent classifier (images only)
is trained on the labelled training-pool alerts, per seed, and scored on the evaluation alerts.
Prints and writes (``pretrain_real.json`` under ``--out``) accuracy and macro-F1, mean +- std.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STAMPNET_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

from stampnet.evaluation.kshot import object_split  # noqa: E402
from stampnet.evaluation.pretrain_real import (  # noqa: E402
    array_stream,
    latent_scores,
    pretrain_vae,
    read_real_stamps,
    vae_diagnostics,
)
from stampnet.jsonable import json_ready  # noqa: E402


def builtin_stream(size: str, batch_size: int, seed: int):
    """Repeating batches of built-in training stamps ({"stamps", "stamp_mask"})."""
    from stampnet.data.locate import resolve_data_dir
    from stampnet.data.pipeline import alert_dataset

    data_dir = resolve_data_dir(None, builtin_size=size)  # as train.py --size
    dataset = alert_dataset(
        data_dir,
        "train",
        batch_size=batch_size,
        feature_names=(),
        labelled_only=False,
        shuffle=True,
        seed=seed,
        repeat=True,
    )
    return dataset.map(
        lambda inputs, *_: {key: inputs[key] for key in ("stamps", "stamp_mask")}
    ), data_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(SHARED / "data" / "ztf"), help="real sample folder")
    parser.add_argument("--size", default="400", help="built-in data size (objects)")
    parser.add_argument("--epochs", type=int, default=8, help="VAE epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=25, help="VAE batches per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="classifier seeds")
    parser.add_argument("--classifier-epochs", type=int, default=30)
    parser.add_argument("--eval-fraction", type=float, default=0.3)
    parser.add_argument("--candids", default=None, help="file of candids: a labelled subset")
    parser.add_argument("--out", default="pretrain_real", help="output folder")
    args = parser.parse_args(argv)

    from stampnet.evaluation.real_sample import load_real_sample

    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    candids = None
    if args.candids:
        candids = [int(line) for line in Path(args.candids).read_text().split()]
    sample = load_real_sample(args.real, candids=candids)
    pool, held_out = object_split(sample, args.eval_fraction)
    excluded = sorted(set(sample.object_ids[held_out].tolist()))
    real = read_real_stamps(args.real, exclude_objects=excluded)
    labelled_in_pretraining = np.isin(real["object_ids"], sample.object_ids[pool]).sum()
    print(
        f"real stamps for pre-training: {len(real['stamps'])} alerts ({labelled_in_pretraining} "
        f"of them from labelled training objects), {len(excluded)} evaluation objects left out; "
        f"classifier: {len(pool)} training alerts, {len(held_out)} evaluation alerts"
    )
    streams = {"real_unlabelled": array_stream(real, args.batch_size, seed=0)}
    streams["builtin"], builtin_dir = builtin_stream(args.size, args.batch_size, seed=0)
    results, vae_losses, seconds, diagnostics, histories = {}, {}, {}, {}, {}
    evaluation_stamps = sample.inputs((), held_out)
    for source, stream in streams.items():
        start = time.perf_counter()
        vae = pretrain_vae(stream, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch)
        vae_losses[source] = vae.final_losses
        histories[source] = vae.loss_history
        diagnostics[source] = vae_diagnostics(vae, evaluation_stamps)
        tail = vae.loss_history["elbo_loss"][-6:]
        diagnostics[source]["loss_change_last_5_epochs"] = (tail[-1] - tail[0]) / abs(tail[0])
        print(
            f"{source} VAE on the {len(held_out)} evaluation alerts: reconstruction MSE "
            f"{diagnostics[source]['mse_ratio_to_mean_stamp']:.3f} x the mean stamp's, "
            f"{diagnostics[source]['active_units']} of {diagnostics[source]['latent_dim']} "
            f"units active, final ELBO loss {vae.final_losses['elbo_loss']:.2f} (change over the "
            f"last 5 epochs {100 * diagnostics[source]['loss_change_last_5_epochs']:+.1f} %)"
        )
        results[source] = [
            latent_scores(
                vae.encoder,
                sample,
                pool,
                held_out,
                epochs=args.classifier_epochs,
                seed=seed,
                name=f"latent-{source}",
            )
            for seed in args.seeds
        ]
        seconds[source] = time.perf_counter() - start
        print(f"{source}: VAE and {len(args.seeds)} classifiers in {seconds[source]:.0f} s")

    print(
        f"\nlatent classifier (images only) on {len(held_out)} held-back real alerts, "
        f"mean +- std over {len(args.seeds)} classifier seeds:"
    )
    print(f"{'VAE trained on':18s} {'accuracy':>15s} {'macro-F1':>15s} {'final VAE loss':>15s}")
    summary = {}
    for source, runs in results.items():
        summary[source] = {
            f"{score}_{stat}": float(function([run[score] for run in runs]))
            for score in ("accuracy", "macro_f1")
            for stat, function in (("mean", np.mean), ("std", np.std))
        }
        entry = summary[source]
        cells = " ".join(
            f"{entry[f'{score}_mean']:.3f} +- {entry[f'{score}_std']:.3f}".rjust(15)
            for score in ("accuracy", "macro_f1")
        )
        print(f"{source:18s} {cells} {vae_losses[source].get('loss', float('nan')):15.4f}")
    report = {
        "real": args.real,
        "builtin_data": str(builtin_dir),
        "pretraining_alerts": {"real_unlabelled": len(real["stamps"])},
        "vae": {
            "epochs": args.epochs,
            "steps_per_epoch": args.steps_per_epoch,
            "batch_size": args.batch_size,
            "final_losses": vae_losses,
            "loss_history": histories,
            "evaluation_alerts": diagnostics,
        },  # fmt: skip
        "classifier": {
            "epochs": args.classifier_epochs,
            "seeds": args.seeds,
            "train_counts": sample.subset(pool).class_counts(),
            "eval_counts": sample.subset(held_out).class_counts(),
        },  # fmt: skip
        "summary": summary,
        "runs": {
            source: [
                {
                    key: run[key]
                    for key in (
                        "accuracy",
                        "macro_f1",
                        "macro_recall",
                        "per_class",
                        "confusion_matrix",
                    )
                }
                for run in runs
            ]
            for source, runs in results.items()
        },  # fmt: skip
        "seconds": {**seconds, "total": time.perf_counter() - started},
    }
    (out / "pretrain_real.json").write_text(json.dumps(json_ready(report), indent=1))
    print(f"wrote {out}/pretrain_real.json ({report['seconds']['total']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
