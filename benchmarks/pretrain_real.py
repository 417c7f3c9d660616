"""VAE pre-trained on the real sample's unlabelled stamps vs on built-in data, by latent classifier.

Usage:
    python benchmarks/pretrain_real.py [--size 400] [--epochs 8] [--steps-per-epoch 25]
        [--tolerance 0.01] [--seeds 0 1 2] [--classifier-epochs 30] [--out pretrain_real]

The labelled alerts of ``../shared/data/ztf`` are split by objectId as ``benchmarks/kshot.py``
does (same ``--eval-fraction``, same evaluation alerts). Per seed, two VAEs of the ``--model vae``
preset architecture are trained with the same batches per epoch: one on every real alert of the
sample (labelled or not, about 2,000) except the evaluation objects, one on the built-in simulated
data (``--size`` objects, training split); with ``--tolerance`` each stops once its ELBO loss
changed by less than that (relative) over 5 epochs after the KL ramp, else after ``--epochs``.
On each frozen encoder the latent classifier (images only) is trained on the labelled
training-pool alerts and scored on the evaluation alerts. Prints and writes under ``--out``
``pretrain_real.json`` (every run), ``pretrain_real.md`` (accuracy and macro-F1 mean +- std with
the bootstrap interval of one run, reconstruction against the mean stamp, active units, epochs)
and ``pretrain_real.png`` (ELBO curves and scores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# oneDNN's CPU kernels, as ``stampnet train`` and ``train.py`` use; a value the user sets wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stampnet.evaluation.kshot import object_split  # noqa: E402
from stampnet.evaluation.pretrain_real import (  # noqa: E402
    array_stream,
    elbo_change,
    latent_scores,
    pretrain_vae,
    read_real_stamps,
    vae_diagnostics,
)
from stampnet.evaluation.pretrain_summary import (  # noqa: E402
    plot_pretraining,
    pretraining_table,
    summarise_pretraining,
)
from stampnet.jsonable import json_ready  # noqa: E402
from stampnet.shared_data import shared_dir  # noqa: E402

SHARED = shared_dir()


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
    parser.add_argument("--epochs", type=int, default=8, help="VAE epochs (at most)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="stop a VAE once its ELBO loss moved by less than this (relative) over 5 epochs",
    )
    parser.add_argument("--steps-per-epoch", type=int, default=25, help="VAE batches per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="VAE and classifier seeds"
    )
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
    sources = ("real_unlabelled", "builtin")
    results, vae_losses, diagnostics, histories = ({key: [] for key in sources} for _ in "1234")
    seconds = {source: 0.0 for source in sources}
    evaluation_stamps = sample.inputs((), held_out)
    builtin_dir = None
    # Seeds outermost: a run cut short has both sources at its first seeds (the outputs are
    # rewritten after every seed).
    for seed in args.seeds:
        for source in sources:
            start = time.perf_counter()
            if source == "real_unlabelled":
                stream = array_stream(real, args.batch_size, seed=seed)
            else:
                stream, builtin_dir = builtin_stream(args.size, args.batch_size, seed=seed)
            vae = pretrain_vae(
                stream,
                epochs=args.epochs,
                steps_per_epoch=args.steps_per_epoch,
                seed=seed,
                tolerance=args.tolerance,
            )
            found = vae_diagnostics(vae, evaluation_stamps)
            found["epochs"] = len(vae.loss_history["elbo_loss"])
            found["converged_epoch"] = vae.converged_epoch
            found["loss_change_last_5_epochs"] = elbo_change(vae.loss_history["elbo_loss"])
            vae_losses[source].append(vae.final_losses)
            histories[source].append(vae.loss_history)
            diagnostics[source].append(found)
            results[source].append(
                latent_scores(
                    vae.encoder,
                    sample,
                    pool,
                    held_out,
                    epochs=args.classifier_epochs,
                    seed=seed,
                    name=f"latent-{source}",
                )
            )
            seconds[source] += time.perf_counter() - start
            print(
                f"{source} seed {seed}: {found['epochs']} epochs (converged: "
                f"{found['converged_epoch']}); on the {len(held_out)} evaluation alerts "
                f"reconstruction MSE {found['mse_ratio_to_mean_stamp']:.3f} x the mean stamp's, "
                f"{found['active_units']} of {found['latent_dim']} units active, final ELBO loss "
                f"{vae.final_losses['elbo_loss']:.2f} (change over the last 5 epochs "
                f"{100 * found['loss_change_last_5_epochs']:+.2f} %); latent classifier "
                f"accuracy {results[source][-1]['accuracy']:.3f}, macro-F1 "
                f"{results[source][-1]['macro_f1']:.3f} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        write_outputs(
            out, args, sample, pool, held_out, real, builtin_dir, started,
            results, vae_losses, diagnostics, histories, seconds,
        )  # fmt: skip
    return 0


def write_outputs(
    out, args, sample, pool, held_out, real, builtin_dir, started,
    results, vae_losses, diagnostics, histories, seconds,
) -> None:  # fmt: skip
    """Writes pretrain_real.json, .md and .png for the seeds finished so far."""
    seeds = len(results["real_unlabelled"])
    summary = summarise_pretraining(results, diagnostics)
    table = pretraining_table(summary, len(held_out), seeds)
    print("\n" + table)
    (out / "pretrain_real.md").write_text(table + "\n")
    plot_pretraining(summary, histories, out / "pretrain_real.png")
    report = {
        "real": args.real,
        "builtin_data": str(builtin_dir),
        "pretraining_alerts": {"real_unlabelled": len(real["stamps"])},
        "vae": {
            "max_epochs": args.epochs,
            "tolerance": args.tolerance,
            "seeds": args.seeds[:seeds],
            "steps_per_epoch": args.steps_per_epoch,
            "batch_size": args.batch_size,
            "final_losses": vae_losses,
            "loss_history": histories,
            "evaluation_alerts": diagnostics,
        },  # fmt: skip
        "classifier": {
            "epochs": args.classifier_epochs,
            "seeds": args.seeds[:seeds],
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
    print(f"wrote {out}/pretrain_real.json, .md, .png ({report['seconds']['total']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
