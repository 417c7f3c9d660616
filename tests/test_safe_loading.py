"""Nothing stampnet loads can run code: no pickle anywhere, Keras models in safe mode."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from stampnet.data.staged_alerts import RECORD_BYTES
from stampnet.data.staging import Staging
from stampnet.saving import load_model
from tests.conftest import REPO_ROOT

#: Code that unpickles, or loads Keras objects unsafely.
UNSAFE = re.compile(
    r"^\s*(import|from) (pickle|cPickle|dill|cloudpickle|shelve|marshal)\b"
    r"|pickle\.loads?\(|allow_pickle\s*=\s*True|safe_mode\s*=\s*False|joblib\.load"
    r"|layers\.Lambda\(",
    re.MULTILINE,
)


#: The only pickle in stampnet: own Deep-HiTS chunks, read only with ``--allow-pickle`` (refused
#: and not unpickled by default, see test_own_data) and written by ``stampnet export``.
ALLOWED = {
    "stampnet/data/chunks.py: allow_pickle=True",
    # Only its UnpicklingError, so that a corrupt opt-in pickle is a rejection, not a crash.
    "stampnet/data/errors.py: import pickle",
    "stampnet/data/export_layouts.py: import pickle",
}


class _Payload:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_no_pickle_or_unsafe_loading_in_the_code():
    files = [*(REPO_ROOT / "stampnet").rglob("*.py"), *(REPO_ROOT / "benchmarks").glob("*.py")]
    files += [REPO_ROOT / "train.py", REPO_ROOT / "evaluate.py"]
    files += list((REPO_ROOT / "notebooks").glob("*.ipynb"))
    offending = [
        f"{path.relative_to(REPO_ROOT)}: {match.group(0).strip()}"
        for path in files
        if path.exists()
        for match in UNSAFE.finditer(path.read_text())
    ]
    assert len(files) > 50 and set(offending) == ALLOWED


def test_staging_spill_is_raw_arrays_and_a_pickle_in_it_is_not_executed(ztf_dir, tmp_path):
    source = ztf_dir / "multi_record_avro" / "avro_multi_alerts.avro"
    marker = tmp_path / "executed"
    with Staging(tmp_path / "staging") as staging:
        staging.ingest(source)
        staging.assign_splits((1.0, 0.0, 0.0), seed=0)
        spill = tmp_path / "staging" / "alerts.spill"
        assert spill.stat().st_size == RECORD_BYTES * staging.num_alerts() == RECORD_BYTES * 8
        first = next(staging.alert_examples("train"))[1]
        assert first["stamps"].dtype == np.float32 and first["stamp_mask"].dtype == np.uint8
        payload = pickle.dumps(_Payload(marker))
        with open(spill, "r+b") as handle:  # a tampered spill file
            handle.write(payload)
        tampered = next(staging.alert_examples("train"))[1]
    assert not marker.exists()
    assert tampered["stamps"].shape == (63, 63, 3)
    assert not np.array_equal(tampered["stamps"], first["stamps"])


def test_keras_file_carrying_code_is_refused(tmp_path):
    marker = tmp_path / "executed"
    where = str(marker)  # a str closure: Keras stores the lambda's bytecode and its closure
    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2 + float(open(where, "a").close() or 0))(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(path)
    assert not marker.exists()
