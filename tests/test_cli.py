"""The environment ``stampnet`` commands run in (``cli.COMMAND_ENVIRONMENT``)."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def seen_environment(monkeypatch):
    """The environment each command saw when it ran (the command itself is not run)."""
    from stampnet import cli

    seen = []
    monkeypatch.setattr(cli, "_run", lambda known, rest: seen.append(os.environ.copy()) or 0)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # first: the test's end restores the original
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    return seen


def test_train_runs_with_onednn_on_for_its_lifetime_unless_the_user_set_it(
    seen_environment, monkeypatch
):
    """oneDNN trains the stamp classifier and seq_vae faster (benchmarks/onednn_training.py) to
    the same losses; TensorFlow leaves it off on AVX2 CPUs."""
    from stampnet import cli

    cli.main(["train", "--model", "stamp_classifier"])
    assert seen_environment[-1]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ  # not passed on to later processes
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    cli.main(["train", "--model", "stamp_classifier"])
    assert seen_environment[-1]["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_the_train_script_runs_in_the_train_command_environment(seen_environment, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "--model", "seq_vae"])
    with pytest.raises(SystemExit) as exit_code:
        runpy.run_path(str(REPO_ROOT / "train.py"), run_name="__main__")
    assert exit_code.value.code == 0
    assert seen_environment[-1]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ


def test_commands_without_an_environment_leave_onednn_to_tensorflow(seen_environment):
    from stampnet import cli

    cli.main(["evaluate"])
    assert "TF_ENABLE_ONEDNN_OPTS" not in seen_environment[-1]
