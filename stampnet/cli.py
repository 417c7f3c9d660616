"""The ``stampnet`` command: one sub-command per stage of the data flow.

Each sub-command lives beside the code it drives, in a module with ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches, and imports a module (and TensorFlow) only when its
command runs, so ``stampnet --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

#: command -> (module, one-line help)
COMMANDS = {
    "simulate": ("stampnet.simulation.command", "write simulated ZTF-format alerts and labels"),
    "build": ("stampnet.data.command", "build sharded TFRecord datasets from alert files"),
    "export": ("stampnet.data.export", "write alerts as Deep-HiTS/ALeRCE/BTSbot/HDF5 stamp files"),
    "convert": ("stampnet.data.convert", "convert pickled Deep-HiTS chunks to npz or HDF5"),
    "import-alerce": ("stampnet.models.alerce_import", "convert an ALeRCE TF1 checkpoint"),
    "classify": ("stampnet.inference", "classify alert files with a saved model"),
    "train": ("stampnet.training.command", "train a model (same as python train.py)"),
    "embed": ("stampnet.evaluation.embed", "write latent vectors of a dataset split to parquet"),
    "evaluate": ("stampnet.evaluation.command", "evaluate runs (same as python evaluate.py)"),
    "info": ("stampnet.info", "versions, devices, and whether XLA and mixed precision work"),
}
#: Environment a command sets before TensorFlow is imported (an explicit setting wins).
#: TensorFlow turns oneDNN's kernels on by default only on CPUs with AVX-512 VNNI or AMX.
#: classify: on AVX2 cores they run the ALeRCE model about twice as fast (benchmarks/classify.py).
#: train (and train.py): a training step of the stamp classifier or seq_vae takes about half the
#: CPU time, to the same losses within float rounding (benchmarks/onednn_training.py,
#: benchmarks/training.py --onednn off|on); the strategies' empty replica batches, which
#: oneDNN's convolution mishandles, are guarded in stampnet.training.onednn.
ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "1"}
COMMAND_ENVIRONMENT = {"classify": ONEDNN, "train": ONEDNN}


@contextlib.contextmanager
def command_environment(command: str):
    """``COMMAND_ENVIRONMENT[command]`` for the command's lifetime; an explicit setting wins.

    What was added is removed afterwards, so that a program calling ``main`` in-process (a test, a
    notebook) does not pass it on to the processes it starts later.
    """
    wanted = COMMAND_ENVIRONMENT.get(command, {})
    added = {name: value for name, value in wanted.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stampnet", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, add_help=False)
        subparser.set_defaults(module_name=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ INFO lines (CPU instruction sets, oneDNN) on every start tell a user
    # nothing they can act on; warnings and errors still show. An explicit setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    known, rest = parser.parse_known_args(argv[:1])
    with command_environment(known.command):
        return _run(known, argv[1:] + rest)


def _run(known: argparse.Namespace, arguments: list[str]) -> int:
    try:
        module = importlib.import_module(known.module_name)
    except ModuleNotFoundError as error:
        if error.name != "tensorflow":
            raise
        # TensorFlow comes from an extra (setup.cfg), so a bare `pip install -e .` lacks it.
        sys.exit(
            "stampnet needs TensorFlow, which comes with an install extra: "
            'pip install -e ".[cpu]" (any machine) or pip install -e ".[gpu]" (NVIDIA GPU, Linux)'
        )
    subparser = argparse.ArgumentParser(
        prog=f"stampnet {known.command}", description=(module.__doc__ or "").split("\n\n")[0]
    )
    module.add_arguments(subparser)
    args = subparser.parse_args(arguments)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
