"""Training under tf.distribute: every model family under ``mirrored`` on two logical CPUs, and
``mirrored`` (resumed mid-run) and two workers on loopback against one device with the same global
batch. The runs are subprocesses (``tests/distributed_runs.py``; devices and the collective runtime
are fixed when TF starts), all started at once by the ``runs`` fixture."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
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
#: same global batch, so the losses agree to float32 rounding (checked to 1e-5). The weights agree
#: less: Adam divides each gradient by its running RMS (epsilon 1e-7), so where a gradient is near
#: zero, rounding in another order becomes part of a step (learning rate 1e-3). Measured over four
#: steps: ~1e-7 on simulator 1.4's data, 3.6e-4 on 1.5's, with the losses still equal to 5e-6.
WEIGHT_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def builtin_data(tmp_path_factory):
    from stampnet.simulation.builtin import ensure_builtin_dataset

    # 30 objects: every split holds every class, so validation and evaluation run too.
    return ensure_builtin_dataset(tmp_path_factory.mktemp("data"), size=30, seed=0)


def run_workers(argvs, envs, timeout=1200) -> list[list[dict]]:
    """Starts one ``tests.distributed_runs`` process per argv at once; their RESULT lines.

    Output goes to files, not pipes: a process whose pipe nobody reads yet would block."""
    logs = [tempfile.TemporaryFile("w+") for _ in argvs]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distributed_runs", *argv],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv, env, log in zip(argvs, envs, logs, strict=True)
    ]
    results = []
    try:
        for process, log in zip(processes, logs, strict=True):
            process.wait(timeout=timeout)
            log.seek(0)
            output = log.read()
            assert process.returncode == 0, output[-4000:]
            results.append(
                [json.loads(line[7:]) for line in output.splitlines() if line.startswith("RESULT ")]
            )
    finally:  # a failed or hung process: the others (its peers) would wait for it forever
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    return results


def run_json(**run) -> str:
    return json.dumps(run)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def runs(builtin_data, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Every training the slow tests check, in four processes started at once (a tiny run's
    start-up costs as much as its training, so each process runs several):

    - two logical CPUs: the one-device reference (``default``, on the first CPU), the same run
      under ``mirrored`` interrupted after its first epoch and resumed, a mixed-precision run;
    - two logical CPUs: every other family under ``mirrored``, with oneDNN's kernels on;
    - two workers on loopback (``TF_CONFIG``), one CPU each: the reference run under
      ``multiworker``, into one ``--out``, with a ``TMPDIR`` each (a worker's scratch folder).

    Returns the parent folder and the results by ``model + tag`` (workers: ``+ -worker<i>``).
    """
    out = tmp_path_factory.mktemp("runs")
    common = ["--data", str(builtin_data), "--out", str(out)]
    stamp_runs = [
        run_json(model="stamp_classifier", strategy="default", tag="_one", **DETERMINISTIC),
        run_json(model="stamp_classifier", tag="_resumed", interrupt_after=1, **DETERMINISTIC),
        run_json(model="stamp_classifier", tag="_resumed", resume=True, **DETERMINISTIC),
        run_json(model="stamp_classifier", tag="_mixed", mixed_precision=True),
    ]
    family_runs = [name for name in FAMILIES if name != "stamp_classifier"]
    worker_run = run_json(
        model="stamp_classifier", strategy="multiworker", tag="_two", **DETERMINISTIC
    )
    argvs = [
        [*common, "--cpus", "2", *stamp_runs],
        [*common, "--cpus", "2", *family_runs],
        [*common, "--cpus", "1", worker_run],
        [*common, "--cpus", "1", worker_run],
    ]
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    # The other families with oneDNN's kernels on, as TensorFlow sets them on AVX-512 VNNI CPUs:
    # seq_classifier's last validation batch leaves a replica no rows (``training.onednn``).
    # The runs compared weight for weight use one set of kernels, TensorFlow's stock ones (train
    # turns oneDNN on unless told otherwise), so that only the strategy differs between them.
    default_kernels = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    envs = [default_kernels, {"TF_ENABLE_ONEDNN_OPTS": "1"}]
    for index in range(2):
        task = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        scratch = out / f"tmp{index}"
        scratch.mkdir()
        envs.append({"TF_CONFIG": json.dumps(task), "TMPDIR": str(scratch), **default_kernels})
    results = run_workers(argvs, envs, timeout=300 * (len(stamp_runs) + len(family_runs)))
    stamp_results, family_results, *worker_results = results
    assert [r["tag"] for r in stamp_results if r.get("interrupted")] == ["_resumed"], results
    finished = {
        r["model"] + r["tag"]: r for r in stamp_results + family_results if not r.get("interrupted")
    }
    for index, (result,) in enumerate(worker_results):
        finished[f"stamp_classifier_two-worker{index}"] = result
    return out, finished


def assert_same_weights(weights_file, reference_file) -> float:
    """Max |difference| of two runs' weights, asserted below ``WEIGHT_TOLERANCE``."""
    weights, reference = np.load(weights_file), np.load(reference_file)
    assert weights.files == reference.files
    worst = max(float(np.abs(weights[name] - reference[name]).max()) for name in reference.files)
    assert worst <= WEIGHT_TOLERANCE, f"{weights_file}: max difference {worst}"
    return worst


@pytest.mark.slow
def test_every_model_family_trains_under_mirrored_on_two_logical_cpus(runs):
    out, results = runs
    # stamp_classifier: the resumed run (and the mixed-precision one, with augmentation).
    for key in ["stamp_classifier_resumed", *FAMILIES[1:]]:
        result = results[key]
        assert result["strategy"] == "mirrored" and result["replicas"] == 2, result
        assert result["finite"] and np.isfinite(result["loss"]).all(), result
        assert (out / key / "model.keras").is_file(), key
        assert (out / key / "model_card.json").is_file(), key


@pytest.mark.slow
def test_mirrored_on_two_cpus_resumed_reaches_the_weights_of_one_device(runs):
    out, results = runs
    one, resumed = results["stamp_classifier_one"], results["stamp_classifier_resumed"]
    assert one["replicas"] == 1 and resumed["replicas"] == 2
    # The resumed fit ran the second epoch only; history.csv holds both.
    assert len(resumed["loss"]) == 2
    np.testing.assert_allclose(resumed["loss"], one["loss"], rtol=1e-5)
    assert_same_weights(resumed["weights_file"], one["weights_file"])


@pytest.mark.slow
def test_two_workers_on_loopback_reach_the_weights_of_one_worker(runs):
    # The reference is the one-device run: same global batch, same pipeline.
    out, results = runs
    one = results["stamp_classifier_one"]
    for index in range(2):
        result = results[f"stamp_classifier_two-worker{index}"]
        assert result["strategy"] == "multiworker" and result["replicas"] == 2, result
        assert result["weights_file"].endswith(f"two-worker{index}-weights.npz")
        np.testing.assert_allclose(result["loss"], one["loss"], rtol=1e-5)
        assert_same_weights(result["weights_file"], one["weights_file"])
    # Only the chief wrote the run folder; the other worker's scratch copy is gone.
    assert (out / "stamp_classifier_two" / "model_card.json").is_file()
    assert sorted(path.name for path in out.glob("stamp_classifier_two*")) == [
        "stamp_classifier_two", "stamp_classifier_two-worker0-weights.npz",
        "stamp_classifier_two-worker1-weights.npz"]  # fmt: skip
    assert not list((out / "tmp1").glob("stampnet-*"))


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
def test_mixed_precision_under_mirrored_trains_and_exports(runs):
    out, results = runs
    result = results["stamp_classifier_mixed"]
    assert result["replicas"] == 2 and result["finite"], result
    from stampnet.saving import load_model

    model = load_model(out / "stamp_classifier_mixed" / "model.keras")
    assert "mixed_float16" in json.dumps(model.get_config())  # the layers computed in float16
    assert model.get_layer("probabilities").dtype_policy.name == "float32"
    assert np.isfinite(result["loss"]).all()


#: Two replicas on two logical CPUs, oneDNN on: validation data of 5 rows in batches of 4, so
#: the second replica gets 0 rows of the last batch. Prints the validation loss under the
#: strategy and the same model's loss on one device.
EMPTY_REPLICA_BATCH = """
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from stampnet.training import distribute
strategy = distribute.make_strategy("mirrored")
keras.utils.set_random_seed(0)
with strategy.scope():
    images = keras.Input((21, 21, 3))
    x = keras.layers.ZeroPadding2D(3)(images)
    x = keras.layers.Conv2D(4, 4, name="conv_1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Reshape((-1, 4))(x)
    x = keras.layers.Conv1D(2, 3, padding="causal", name="conv1d")(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(images, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
def data(rows):
    return tf.data.Dataset.from_tensor_slices(
        (rng.random((rows, 21, 21, 3), dtype="float32"), rng.integers(0, 2, rows))
    ).batch(4)
train, validation = data(8), data(5)
with distribute.fitting(strategy, model, train):
    history = model.fit(train, validation_data=validation, epochs=1, verbose=0,
                        shuffle=False)
model._distribute_strategy = None
print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync,
    "val_loss": history.history["val_loss"][0],
    "one_device": model.evaluate(validation, verbose=0)}))
"""


def test_a_replica_with_no_rows_validates_with_onednn_on():
    """oneDNN's convolution returns its input for an empty batch (``stampnet.training.onednn``);
    unguarded, this fit fails: "input depth must be evenly divisible by filter depth: 3 vs 4"."""
    done = subprocess.run(
        [sys.executable, "-c", EMPTY_REPLICA_BATCH],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "TF_ENABLE_ONEDNN_OPTS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line[7:])
    assert result["replicas"] == 2
    # The empty replica added nothing: the loss over the 5 rows is the one device's.
    np.testing.assert_allclose(result["val_loss"], result["one_device"], rtol=1e-5)
