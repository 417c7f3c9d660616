"""Training output: Keras's progress bar on a terminal, one line per epoch anywhere else.

A real training's output without a terminal is checked in test_training (``finished_run``)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from stampnet.training.progress import TrainingProgress, epoch_line

EPOCH_LINE = re.compile(r"^epoch (\d+)/3 - \d+s - loss: \d+\.\d{4} - val_loss: \d+\.\d{4}$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def epochs_as_fit_runs_them(progress: TrainingProgress, verbose: int) -> None:
    """The callback calls of a 3-epoch fit of 2 steps, without a model (fast)."""
    progress.set_params({"verbose": verbose, "epochs": 3, "steps": 2})
    progress.on_train_begin()
    for epoch in range(3):
        progress.on_epoch_begin(epoch)
        for step in range(2):
            progress.on_train_batch_end(step, {"loss": 0.5})
        progress.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.25})


def test_without_a_terminal_each_epoch_is_one_line(capsys):
    stream = io.StringIO()
    epochs_as_fit_runs_them(TrainingProgress(stream), verbose=1)
    lines = stream.getvalue().splitlines()
    assert [int(EPOCH_LINE.match(line).group(1)) for line in lines] == [1, 2, 3], lines
    assert capsys.readouterr().out == ""


def test_on_a_terminal_keras_draws_its_bar(capsys):
    stream = Terminal()
    epochs_as_fit_runs_them(TrainingProgress(stream), verbose=1)
    assert stream.getvalue() == ""
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "\r" in out


@pytest.mark.parametrize(("stream", "verbose", "lines"), [(Terminal, 2, 3), (io.StringIO, 0, 0)])
def test_verbose_two_prints_epoch_lines_everywhere_and_zero_nothing(capsys, stream, verbose, lines):
    stream = stream()
    epochs_as_fit_runs_them(TrainingProgress(stream), verbose=verbose)
    assert len(stream.getvalue().splitlines()) == lines
    assert all(EPOCH_LINE.match(line) for line in stream.getvalue().splitlines())
    assert capsys.readouterr().out == ""


def test_epoch_line_formats_small_values_and_skips_non_scalars():
    line = epoch_line(0, 2, 1.6, {"loss": 0.5, "beta": 2e-5, "matrix": [[1, 2]], "nan": np.nan})
    assert line == "epoch 1/2 - 2s - loss: 0.5000 - beta: 2.0000e-05 - nan: nan"
