"""Training under tf.distribute: every model family under ``mirrored`` on two logical CPUs, and two
workers on loopback against one worker with the same global batch. Each run is a subprocess
(``tests/distributed_runs.py``): devices and the collective runtime are fixed when TF starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

FAMILIES = ("stamp_classifier", "cae", "vae", "vade", "latent_classifier", "seq_classifier",
            "seq_vae")  # fmt: skip
#: The runs compared across strategies: no augmentation and no dropout (their random draws are
#: per replica, so they differ from one device's by design), global batch 8, two epochs of two
#: steps (the second after an interruption and ``--resume`` under ``mirrored``).
DETERMINISTIC = {"augment": False, "dropout": 0, "batch_size": 8, "epochs": 2, "steps": 2}
#: Every strategy sums the same per-example gradients, in another order, and normalises over the
#: same global batch: float32 rounding over four Adam steps (measured: ~1e-7) stays below this.
WEIGHT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def builtin_data(tmp_path_factory):
    from stampnet.simulation.builtin import ensure_builtin_dataset

    # 30 objects: every split holds every class, so validation and evaluation run too.
    return ensure_builtin_dataset(tmp_path_factory.mktemp("data"), size=30, seed=0)


def run_workers(argvs, envs, timeout=1200) -> list[list[dict]]:
    """Starts one ``tests.distributed_runs`` process per argv at once; their RESULT lines."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distributed_runs", *argv],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv, env in zip(argvs, envs, strict=True)
    ]
    results = []
    for process in processes:
        output, _ = process.communicate(timeout=timeout)
        assert process.returncode == 0, output[-4000:]
        results.append(
            [json.loads(line[7:]) for line in output.splitlines() if line.startswith("RESULT ")]
        )
    return results


def run_json(**run) -> str:
    return json.dumps(run)


@pytest.fixture(scope="module")
def two_cpu_runs(builtin_data, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Every training the mirrored tests check, in ONE process with two logical CPUs (a tiny
    run's start-up costs as much as its training): the one-device reference (``default``, on
    the first CPU), the same run under ``mirrored`` interrupted after its first epoch and
    resumed, a mixed-precision run, and every other family. Results by ``model + tag``."""
    out = tmp_path_factory.mktemp("two_cpus")
    runs = [
        run_json(model="stamp_classifier", strategy="default", tag="_one", **DETERMINISTIC),
        run_json(model="stamp_classifier", tag="_resumed", interrupt_after=1, **DETERMINISTIC),
        run_json(model="stamp_classifier", tag="_resumed", resume=True, **DETERMINISTIC),
        run_json(model="stamp_classifier", tag="_mixed", mixed_precision=True),
        *[name for name in FAMILIES if name != "stamp_classifier"],
    ]
    argv = ["--data", str(builtin_data), "--out", str(out), "--cpus", "2", *runs]
    (results,) = run_workers([argv], [{}])
    finished = {r["model"] + r["tag"]: r for r in results if not r.get("interrupted")}
    assert [r["tag"] for r in results if r.get("interrupted")] == ["_resumed"], results
    return out, finished


def assert_same_weights(weights_file, reference_file) -> float:
    """Max |difference| of two runs' weights, asserted below ``WEIGHT_TOLERANCE``."""
    weights, reference = np.load(weights_file), np.load(reference_file)
    assert weights.files == reference.files
    worst = max(float(np.abs(weights[name] - reference[name]).max()) for name in reference.files)
    assert worst <= WEIGHT_TOLERANCE, f"{weights_file}: max difference {worst}"
    return worst


@pytest.mark.slow
def test_every_model_family_trains_under_mirrored_on_two_logical_cpus(two_cpu_runs):
    out, results = two_cpu_runs
    # stamp_classifier: the resumed run (and the mixed-precision one, with augmentation).
    for key in ["stamp_classifier_resumed", *FAMILIES[1:]]:
        result = results[key]
        assert result["strategy"] == "mirrored" and result["replicas"] == 2, result
        assert result["finite"] and np.isfinite(result["loss"]).all(), result
        assert (out / key / "model.keras").is_file(), key
        assert (out / key / "model_card.json").is_file(), key


@pytest.mark.slow
def test_mirrored_on_two_cpus_resumed_reaches_the_weights_of_one_device(two_cpu_runs):
    out, results = two_cpu_runs
    one, resumed = results["stamp_classifier_one"], results["stamp_classifier_resumed"]
    assert one["replicas"] == 1 and resumed["replicas"] == 2
    # The resumed fit ran the second epoch only; history.csv holds both.
    assert len(resumed["loss"]) == 2
    np.testing.assert_allclose(resumed["loss"], one["loss"], rtol=1e-5)
    assert_same_weights(resumed["weights_file"], one["weights_file"])


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_two_workers_on_loopback_reach_the_weights_of_one_worker(
    builtin_data, two_cpu_runs, tmp_path
):
    # The reference is two_cpu_runs' one-device run: same global batch, same pipeline.
    run = run_json(model="stamp_classifier", strategy="multiworker", tag="_two", **DETERMINISTIC)
    argv = ["--data", str(builtin_data), "--out", str(tmp_path / "out"), "--cpus", "1", run]
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    (tmp_path / "out").mkdir()
    envs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        task = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        envs.append({"TF_CONFIG": json.dumps(task), "TMPDIR": str(scratch)})
    results = run_workers([argv, argv], envs)
    one = two_cpu_runs[1]["stamp_classifier_one"]
    for index, (result,) in enumerate(results):
        assert result["replicas"] == 2, result
        assert result["weights_file"].endswith(f"-worker{index}-weights.npz")
        assert_same_weights(result["weights_file"], one["weights_file"])
    # Only the chief wrote the run folder; the other worker's scratch copy is gone.
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "stamp_classifier_two", "stamp_classifier_two-worker0-weights.npz",
        "stamp_classifier_two-worker1-weights.npz"]  # fmt: skip
    assert (tmp_path / "out" / "stamp_classifier_two" / "model_card.json").is_file()
    assert not list((tmp_path / "tmp1").glob("stampnet-*"))


def test_multiworker_without_tf_config_says_what_to_set(monkeypatch):
    from stampnet.training import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="not a valid cluster description"):
        distribute.make_strategy("multiworker")
    with pytest.raises(ValueError, match="strategy must be one of"):
        distribute.make_strategy("tpu")


def test_global_batch_must_divide_over_the_replicas():
    import tensorflow as tf

    from stampnet.training import distribute

    class TwoReplicas:
        num_replicas_in_sync = 2

    distribute.check_global_batch(64, tf.distribute.get_strategy())
    distribute.check_global_batch(64, TwoReplicas())
    with pytest.raises(ValueError, match="divisible by the 2 replicas"):
        distribute.check_global_batch(63, TwoReplicas())


def test_device_flags_reach_the_train_config():
    import argparse

    from stampnet.training.command import add_arguments, resolve_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = resolve_config(
        parser.parse_args(
            [
                "--model",
                "stamp_classifier",
                "--strategy",
                "mirrored",
                "--mixed-precision",
                "--jit-compile",
            ]
        )  # fmt: skip
    )
    assert config.train.strategy == "mirrored"
    assert config.train.mixed_precision is True and config.train.jit_compile is True
    default = resolve_config(parser.parse_args(["--model", "stamp_classifier"]))
    assert default.train.strategy == "default" and default.train.jit_compile is None


@pytest.mark.slow
def test_mixed_precision_under_mirrored_trains_and_exports(two_cpu_runs):
    out, results = two_cpu_runs
    result = results["stamp_classifier_mixed"]
    assert result["replicas"] == 2 and result["finite"], result
    from stampnet.saving import load_model

    model = load_model(out / "stamp_classifier_mixed" / "model.keras")
    assert "mixed_float16" in json.dumps(model.get_config())  # the layers computed in float16
    assert model.get_layer("probabilities").dtype_policy.name == "float32"
    assert np.isfinite(result["loss"]).all()
