"""Train a model and leave a complete run folder (``stampnet train`` == ``python train.py``).

Examples:
    python train.py --model stamp_classifier                 # built-in simulated data
    python train.py --model stamp_classifier --data tfrecords/ztf_sample --epochs 5
    python train.py --model seq_vae --max-detections 5 --latent-dim 8
    python train.py --resume runs/stamp_classifier-20260101-120000   # continue after a crash

Every flag below overrides the model's preset only when given; the run folder's config.json
records the configuration that was used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stampnet.training.config import RunConfig, apply_overrides
from stampnet.training.flags import add_config_arguments, overrides_from_args
from stampnet.training.registry import get_spec, model_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument(
        "--model",
        choices=model_names(),
        default=None,
        help="model to train (its preset configuration is the default of every flag below); "
        "required unless --resume is given",
    )
    parser.add_argument(
        "--show-config",
        action="store_true",
        help="print the resolved configuration (preset + flags) as JSON and exit",
    )
    add_config_arguments(parser)


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The run's configuration: the model's preset (or a resumed run's config.json) + flags."""
    overrides = overrides_from_args(args)
    resume = overrides["train"].get("resume")
    if resume:
        config_path = Path(resume) / "config.json"
        if not config_path.exists():
            raise ValueError(
                f"--resume {resume}: no config.json there; expected a run folder of train.py"
            )
        config = RunConfig.from_dict(json.loads(config_path.read_text()))
        if args.model and args.model != config.model:
            raise ValueError(
                f"--resume {resume} is a {config.model!r} run, but --model {args.model!r} was given"
            )
    else:
        if not args.model:
            raise ValueError(f"--model is required (one of {model_names()}) unless --resume")
        config = get_spec(args.model).preset()
    return apply_overrides(config, overrides)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.show_config:
        print(config.to_json())
        return 0
    from stampnet.data.locate import resolve_data_dir
    from stampnet.training.summary import closing_summary
    from stampnet.training.trainer import train

    result = train(config)
    print(closing_summary(result.run_dir, resolve_data_dir(run=result.run_dir)))
    return 0
