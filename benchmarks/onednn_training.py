"""Training throughput with TensorFlow's oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) and off.

TensorFlow reads the variable once, when it is imported, so every measurement is its own process;
the two settings alternate (on, off, on, off, ...) so that the machine's load drifts alike on
both. Each process builds the model's preset at ``--batch-size``, trains 3 warm-up batches fed by
the TFRecord pipeline (``trainer.make_dataset``), then times ``--steps`` batches.

    python benchmarks/onednn_training.py --data tfrecords/ztf_sample [--models a,b] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {"on": "1", "off": "0"}


def measure(data_dir: Path, name: str, steps: int, batch_size: int) -> tuple[float, float]:
    """Training examples/s of ``name`` in this process (TensorFlow imported here), and examples
    per CPU-second of the process (less sensitive than wall time to other processes' load)."""
    from stampnet.data.card import load_card
    from stampnet.training import trainer
    from stampnet.training.config import apply_overrides
    from stampnet.training.registry import get_spec

    spec = get_spec(name)
    config = apply_overrides(
        spec.preset(), {"data": {"data_dir": str(data_dir)}, "train": {"batch_size": batch_size}}
    )
    info = trainer.data_info(config, spec, data_dir, load_card(data_dir))
    bundle = spec.build(config, info)
    dataset = trainer.make_dataset(
        config,
        spec,
        info,
        "train",
        bundle.batch_transform,
        keys=trainer.input_keys(bundle.model),
        training=True,
    )
    trainer.ensure_built(bundle.model, dataset)
    bundle.model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
    started, cpu = time.perf_counter(), time.process_time()
    bundle.model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    examples = steps * batch_size
    return examples / (time.perf_counter() - started), examples / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a built dataset (stampnet build)")
    parser.add_argument("--models", default="stamp_classifier,seq_vae")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per setting (best)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement, in a process started with the setting in its environment
        rate, per_cpu = measure(Path(args.data), args.child, args.steps, args.batch_size)
        load = os.getloadavg()[0]
        print(json.dumps({"examples_per_s": rate, "per_cpu_s": per_cpu, "load": load}))
        return
    rates: dict[str, dict[str, list[float]]] = {}
    per_cpu: dict[str, dict[str, list[float]]] = {}
    loads = []
    for _ in range(args.rounds):
        for name in args.models.split(","):
            for setting, value in SETTINGS.items():
                environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": value}
                environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                command = [sys.executable, __file__, "--data", args.data, "--child", name]
                command += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
                done = subprocess.run(
                    command, env=environment, capture_output=True, text=True, check=False
                )
                if done.returncode:
                    sys.exit(f"{name} with oneDNN {setting} failed:\n{done.stderr[-2000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rates.setdefault(name, {}).setdefault(setting, []).append(result["examples_per_s"])
                per_cpu.setdefault(name, {}).setdefault(setting, []).append(result["per_cpu_s"])
                loads.append(result["load"])
                print(
                    f"{name} oneDNN {setting}: {result['examples_per_s']:.1f} examples/s, "
                    f"{result['per_cpu_s']:.1f} per CPU-second"
                )
    print(f"load average {min(loads):.2f}-{max(loads):.2f} during the runs")
    print("| model | off ex/s | on ex/s | on / off | off ex/CPU-s | on ex/CPU-s | on / off |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for name, by_setting in rates.items():
        off, on = max(by_setting["off"]), max(by_setting["on"])
        cpu_off, cpu_on = max(per_cpu[name]["off"]), max(per_cpu[name]["on"])
        summary.append(
            {"model": name, **{f"{s}_examples_per_s": v for s, v in by_setting.items()}}
            | {f"{s}_examples_per_cpu_s": v for s, v in per_cpu[name].items()}
        )
        print(
            f"| {name} | {off:.1f} | {on:.1f} | {on / off:.2f} | "
            f"{cpu_off:.1f} | {cpu_on:.1f} | {cpu_on / cpu_off:.2f} |"
        )
    if args.json:
        payload = {"batch_size": args.batch_size, "steps": args.steps, "loads": loads}
        Path(args.json).write_text(json.dumps({**payload, "models": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
