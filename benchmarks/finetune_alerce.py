"""Fine-tuning from the ALeRCE 2019 import beside training from scratch, in one evaluation report.

The shared sample's labelled alerts are built once (``stampnet build``, or ``--data``); the
ALeRCE 2019 images-only classifier (``stampnet import-alerce``) is evaluated as it is, and the
same stamp-classifier configuration (images only, rotations pooled after dense_2 as in 2019, no
dropout) is trained three times with the same seed: from scratch, from the import
(``--init``), and from the import with the trunk frozen (``--init --freeze trunk``). One
``evaluate.py`` comparison then holds all four on the test split.

    python benchmarks/finetune_alerce.py --out runs/finetune-alerce [--epochs 8] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stampnet.shared_data import shared_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_dir()

VARIANTS = {
    "scratch": (),
    "init_alerce2019": ("--init", "{alerce}"),
    "init_alerce2019_frozen_trunk": ("--init", "{alerce}", "--freeze", "trunk"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the import, runs and report")
    parser.add_argument("--data", default=None, help="a built dataset (default: build the sample)")
    parser.add_argument(
        "--checkpoint", default=str(SHARED / "reference" / "alerce_stamp_classifier_2019_images")
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from stampnet.cli import main as stampnet_main
    from stampnet.models.alerce_import import import_alerce_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else out / "ztf_sample"
    if not args.data and not (data / "dataset_card.json").is_file():
        ztf = SHARED / "data" / "ztf"
        stampnet_main(["build", "--source", str(ztf), "--labels", str(ztf / "labels.csv"),
                       "--out", str(data)])  # fmt: skip
    alerce = out / "alerce_2019.keras"
    if not alerce.is_file():
        import_alerce_checkpoint(args.checkpoint).save(alerce)
    common = [
        "--model", "stamp_classifier", "--data", str(data), "--features", "none",
        "--pool-after", "dense_2", "--dropout-rate", "0.0", "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
        "--patience", "4", "--seed", str(args.seed), "--verbose", "2",
    ]  # fmt: skip
    if args.steps_per_epoch:
        common += ["--steps-per-epoch", str(args.steps_per_epoch)]
    runs = []
    for name, extra in VARIANTS.items():
        run_dir = out / name
        if not (run_dir / "model_card.json").is_file():
            flags = [flag.format(alerce=alerce) for flag in extra]
            stampnet_main(["train", *common, *flags, "--out", str(run_dir)])
        runs.append(run_dir)
    report = out / "comparison"
    stampnet_main(["evaluate", str(alerce), *map(str, runs), "--data", str(data),
                   "--split", "test", "--out", str(report)])  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    print(f"\n{'model':34s} {'examples':>8s} {'accuracy':>8s} {'macro-F1':>8s} {'bal.acc':>8s}")
    for result in metrics["runs"]:
        for scores in result["models"].values():
            print(
                f"{result['run']:34s} {result['num_examples']:8d} {scores['accuracy']:8.3f} "
                f"{scores['macro_f1']:8.3f} {scores['macro_recall']:8.3f}"
            )
    common_classes = metrics.get("common_classes") or {}
    for row in common_classes.get("rows", []):
        print(f"common classes {common_classes['classes']}: {row[0]} {row[2]:.3f} on {row[1]}")


if __name__ == "__main__":
    main()
