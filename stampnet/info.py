"""``stampnet info``: versions, devices TensorFlow sees, whether XLA and mixed precision work.

Every answer is tried, not guessed: a tiny function is jit-compiled with XLA on each device kind,
and a ``mixed_float16`` Dense layer is run, so a broken CUDA install shows up here rather than an
hour into a training run. ``--json`` prints the same report as JSON (for bug reports).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys

#: Distributions that each install the ``tensorflow/`` package; two at once overwrite each other.
TENSORFLOW_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tf-nightly",
    "tf-nightly-cpu",
)
#: Other packages whose versions matter to a bug report.
OTHER_DISTRIBUTIONS = ("keras", "numpy", "tensorflow-datasets", "protobuf", "apache-beam")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    report = collect()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if not report["problems"] else 1


def installed_versions(names) -> dict[str, str]:
    """``{distribution: version}`` of the installed ones among ``names``."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def collect() -> dict:
    """The report: versions, devices, XLA and mixed-precision checks, and problems found."""
    import stampnet

    frameworks = installed_versions(TENSORFLOW_DISTRIBUTIONS)
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "stampnet": stampnet.__version__,
        "tensorflow_distributions": frameworks,
        "packages": installed_versions(OTHER_DISTRIBUTIONS),
        "problems": [],
    }
    if len(frameworks) > 1:
        report["problems"].append(
            f"{len(frameworks)} TensorFlow builds are installed at once ({', '.join(frameworks)}); "
            "they overwrite each other's tensorflow/ files. Uninstall all of them, then install "
            'stampnet with exactly one extra: pip install -e ".[cpu]" or ".[gpu]".'
        )
    try:
        import tensorflow as tf
    except ImportError as error:
        report["problems"].append(
            f"TensorFlow cannot be imported ({error}); install stampnet with an extra: "
            'pip install -e ".[cpu]" (CPU) or pip install -e ".[gpu]" (NVIDIA GPU, Linux).'
        )
        return report
    import keras

    build = dict(tf.sysconfig.get_build_info())
    report["tensorflow"] = tf.__version__
    report["keras"] = keras.__version__
    report["keras_backend"] = keras.backend.backend()
    report["built_with_cuda"] = bool(build.get("is_cuda_build", False))
    report["cuda_build"] = {
        key: build[key] for key in ("cuda_version", "cudnn_version") if key in build
    }
    devices = tf.config.list_physical_devices()
    report["devices"] = [_describe(tf, device) for device in devices]
    kinds = sorted({device.device_type for device in devices})
    report["xla"] = {kind: _try_xla(tf, kind) for kind in kinds}
    report["mixed_precision"] = _try_mixed_precision(tf, keras, kinds)
    if report["built_with_cuda"] and "GPU" not in kinds:
        report["problems"].append(
            "TensorFlow is a CUDA build but sees no GPU: check `nvidia-smi`, the driver version, "
            'and that the CUDA wheels came with it (pip install -e ".[gpu]").'
        )
    return report


def _describe(tf, device) -> dict:
    described = {"name": device.name, "type": device.device_type}
    if device.device_type == "GPU":
        details = tf.config.experimental.get_device_details(device)
        described.update(
            {key: details[key] for key in ("device_name", "compute_capability") if key in details}
        )
    return described


def _try_xla(tf, kind: str) -> dict:
    """Jit-compiles a small matmul + nonlinearity on the first device of ``kind`` and checks it
    against the same function without XLA."""

    def step(x):
        return tf.reduce_sum(tf.nn.relu(tf.matmul(x, x)) + 1.0)

    try:
        with tf.device(f"/{kind}:0"):
            x = tf.reshape(tf.range(64, dtype=tf.float32) / 64.0, (8, 8))
            compiled = float(tf.function(step, jit_compile=True)(x))
            plain = float(step(x))
    except Exception as error:  # noqa: BLE001 (any failure means: XLA is not usable here)
        return {"usable": False, "error": f"{type(error).__name__}: {error}"[:300]}
    return {"usable": abs(compiled - plain) <= 1e-4 * abs(plain), "result": compiled}


def _try_mixed_precision(tf, keras, kinds: list[str]) -> dict:
    """Runs a ``mixed_float16`` Dense layer (float16 compute, float32 weights) once.

    Usable is not the same as fast: float16 pays off on GPUs with tensor cores (compute
    capability 7.0 or higher); on CPUs it is emulated and usually slower than float32.
    """
    try:
        layer = keras.layers.Dense(4, dtype="mixed_float16")
        outputs = layer(tf.ones((2, 8)))
        ok = outputs.dtype == tf.float16 and layer.kernel.dtype == tf.float32
        ok = ok and bool(tf.reduce_all(tf.math.is_finite(tf.cast(outputs, tf.float32))))
    except Exception as error:  # noqa: BLE001
        return {"usable": False, "error": f"{type(error).__name__}: {error}"[:300]}
    fast = []
    if "GPU" in kinds:
        for device in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(device).get("compute_capability")
            fast.append(bool(capability and tuple(capability) >= (7, 0)))
    return {
        "usable": bool(ok),
        "faster_than_float32": bool(fast) and all(fast),
        "note": "float16 speeds up GPUs of compute capability >= 7.0; on CPU it is emulated",
    }


def format_report(report: dict) -> str:
    lines = [
        f"stampnet {report['stampnet']}, Python {report['python']} on {report['platform']}",
        "TensorFlow builds installed: "
        + (", ".join(f"{k} {v}" for k, v in report["tensorflow_distributions"].items()) or "none"),
        "other packages: " + ", ".join(f"{k} {v}" for k, v in report["packages"].items()),
    ]
    if "tensorflow" in report:
        cuda = report["cuda_build"]
        cuda_text = (
            f", CUDA {cuda.get('cuda_version')}, cuDNN {cuda.get('cudnn_version')}" if cuda else ""
        )
        lines.append(
            f"tensorflow {report['tensorflow']} (CUDA build: {report['built_with_cuda']}"
            + cuda_text
            + f"), keras {report['keras']} (backend {report['keras_backend']})"
        )
        lines.append("devices:")
        for device in report["devices"]:
            extra = ", ".join(f"{k} {v}" for k, v in device.items() if k not in ("name", "type"))
            lines.append(f"  {device['name']}" + (f" ({extra})" if extra else ""))
        for kind, result in report["xla"].items():
            lines.append(f"XLA on {kind}: " + _verdict(result))
        mixed = report["mixed_precision"]
        lines.append(
            "mixed precision (mixed_float16): "
            + _verdict(mixed)
            + ("; faster than float32 here" if mixed.get("faster_than_float32") else "")
            + (f" ({mixed['note']})" if "note" in mixed else "")
        )
    for problem in report["problems"]:
        lines.append(f"PROBLEM: {problem}")
    return "\n".join(lines)


def _verdict(result: dict) -> str:
    if result.get("usable"):
        return "usable"
    return "NOT usable" + (f" ({result['error']})" if "error" in result else "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="stampnet info")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
