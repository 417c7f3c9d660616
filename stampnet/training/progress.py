"""Training output that suits where it goes: Keras's progress bar on a terminal, one line per
epoch anywhere else.

Keras redraws its bar with backspaces and carriage returns at every step and, since it counts any
POSIX system as a live display, does so into CI logs, ``| tee`` files and the captured output of
a notebook's subprocess too, where every redraw stays: a 25-epoch run leaves thousands of lines.
``TrainingProgress`` takes the place of Keras's own ``ProgbarLogger`` (Keras adds none when the
callbacks hold one) and prints, when the output is not a terminal, a single line per epoch with
its time and metrics:

    epoch 3/25 - 12s - loss: 0.1234 - val_loss: 0.2345

``verbose`` keeps the meaning of ``fit``'s (``train.py --verbose``): 0 silent; 1 (default) the bar
on a terminal or in a notebook, epoch lines elsewhere; 2 epoch lines everywhere.
"""

from __future__ import annotations

import sys
import time

import keras


def is_live_display(stream) -> bool:
    """Whether ``stream`` redraws a line in place: a terminal, or a notebook kernel's output."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) or "ipykernel" in sys.modules


def epoch_line(epoch: int, epochs: int, seconds: float, logs: dict | None) -> str:
    """``epoch 3/25 - 12s - loss: 0.1234 - val_loss: 0.2345`` (metrics in Keras's order)."""
    parts = [f"epoch {epoch + 1}/{epochs}", f"{seconds:.0f}s"]
    for name, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue  # not a scalar metric
        small = number != 0 and abs(number) < 1e-3
        parts.append(f"{name}: {number:.4e}" if small else f"{name}: {number:.4f}")
    return " - ".join(parts)


class TrainingProgress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar where the output is a live display, one line per epoch elsewhere.

    Args:
        stream: where the output goes (checked when training starts); None: ``sys.stdout`` at
            that moment.

    Example:
        >>> model.fit(data, epochs=25, callbacks=[TrainingProgress()], verbose=1)
    """

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.lines = False
        self._epoch_started = 0.0

    def set_params(self, params):
        super().set_params(params)
        stream = sys.stdout if self.stream is None else self.stream
        self.lines = self.verbose == 2 or (self.verbose == 1 and not is_live_display(stream))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()
        if not self.lines:
            super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if not self.lines:
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if not self.lines:
            super().on_epoch_end(epoch, logs)
            return
        seconds = time.perf_counter() - self._epoch_started
        stream = sys.stdout if self.stream is None else self.stream
        print(epoch_line(epoch, self.epochs, seconds, logs), file=stream, flush=True)
