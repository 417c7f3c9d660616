"""Write the latent means of a dataset's alerts to parquet (``stampnet embed``).

Columns: ``candid``, ``objectId``, ``label`` (class name, "unknown" when unlabelled), ``split``,
``z_0`` ... ``z_{d-1}`` (the encoder's posterior mean). The table feeds the latent-space plots,
the clustering scores and the notebook.

Examples:
    stampnet embed --run runs/vae-20260101-120000                  # every split, into the run
    stampnet embed --run runs/vae-... --data tfrecords/ztf_sample --split test --output z.parquet
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stampnet.constants import UNLABELLED

SPLIT_CHOICES = ("train", "validation", "test", "all")


def collect_latents(encoder, dataset) -> dict[str, np.ndarray]:
    """Encodes every batch of an ``alert_dataset(..., with_ids=True)``.

    Returns arrays ``z_mean`` (N, D), ``features`` (N, F) raw, ``label`` (N,) int (-1 unlabelled),
    ``candid`` (N,) int64 and ``object_id`` (N,) str.
    """
    from stampnet.models.latent_classifier import encoder_latent_mean

    columns = {"z_mean": [], "features": [], "label": [], "candid": [], "object_id": []}
    for inputs, label, *_ in dataset:
        columns["z_mean"].append(np.asarray(encoder_latent_mean(encoder, inputs)))
        columns["features"].append(np.asarray(inputs["features"]))
        columns["label"].append(np.asarray(label))
        if "candid" not in inputs:
            raise ValueError("collect_latents needs a dataset built with with_ids=True")
        columns["candid"].append(np.asarray(inputs["candid"]))
        columns["object_id"].append(np.char.decode(np.asarray(inputs["object_id"]).astype(bytes)))
    if not columns["z_mean"]:
        raise ValueError("collect_latents received an empty dataset")
    return {key: np.concatenate(values) for key, values in columns.items()}


def latent_frame(collected: dict, class_names: Sequence[str], split: str) -> pd.DataFrame:
    """The parquet table of one split from ``collect_latents``' arrays."""
    names = np.array([*class_names, UNLABELLED], dtype=object)
    labels = np.asarray(collected["label"])
    frame = pd.DataFrame(
        {
            "candid": collected["candid"].astype(np.int64),
            "objectId": collected["object_id"].astype(str),
            "label": names[np.where(labels >= 0, labels, len(class_names))],
            "split": split,
        }
    )
    z_mean = np.asarray(collected["z_mean"], np.float32)
    latent = pd.DataFrame(z_mean, columns=[f"z_{index}" for index in range(z_mean.shape[1])])
    return pd.concat([frame, latent], axis=1)


def embed(
    encoder,
    data_dir,
    splits: Sequence[str],
    *,
    batch_size: int = 256,
    feature_names="alerce23",
) -> pd.DataFrame:
    """Latent table of the given splits of a built dataset (all alerts, labelled or not)."""
    from stampnet.data.card import load_card
    from stampnet.data.pipeline import alert_dataset

    class_names = list(load_card(data_dir)["class_names"])
    frames = []
    for split in splits:
        dataset = alert_dataset(
            data_dir,
            split,
            batch_size=batch_size,
            feature_names=feature_names,
            labelled_only=False,
            shuffle=False,
            with_ids=True,
        )
        frames.append(latent_frame(collect_latents(encoder, dataset), class_names, split))
    return pd.concat(frames, ignore_index=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument(
        "--run", required=True, help="run folder of a trained autoencoder, or an encoder .keras"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="built dataset directory; default: the run's own data (config.json), else built-in",
    )
    parser.add_argument("--split", default="all", choices=SPLIT_CHOICES, help="split to embed")
    parser.add_argument(
        "--output",
        default=None,
        help="parquet file to write; default: <run>/embeddings_<split>.parquet",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="alerts per batch")


def run(args: argparse.Namespace) -> int:
    from stampnet.models.latent_classifier import load_encoder

    run_path = Path(args.run)
    encoder = load_encoder(run_path)
    from stampnet.data.card import load_card
    from stampnet.data.locate import resolve_data_dir

    data_dir = resolve_data_dir(args.data, run=run_path)

    available = list(load_card(data_dir)["counts"]["alerts"])
    splits = (
        [s for s in SPLIT_CHOICES[:3] if s in available] if args.split == "all" else [args.split]
    )
    frame = embed(encoder, data_dir, splits, batch_size=args.batch_size)
    if args.output:
        output = Path(args.output)
    else:
        folder = run_path if run_path.is_dir() else run_path.parent
        output = folder / f"embeddings_{args.split}.parquet"
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output, index=False)
    print(f"wrote {len(frame)} latent vectors ({frame.shape[1] - 4} dimensions) to {output}")
    return 0
