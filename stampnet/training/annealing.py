"""KL annealing: the schedule of the weight beta of a VAE's KL term during training.

Starting with beta near 0 lets the decoder learn to use z before the KL term pulls q(z|x) onto the
prior; without it the posterior often collapses (every latent unit inactive, Bowman et al. 2016).
The cyclical schedule repeats the ramp several times (Fu et al. 2019), re-opening the latent path.
"""

from __future__ import annotations

import keras

SCHEDULES = ("none", "linear", "cyclical")


def beta_schedule(
    step: int,
    *,
    schedule: str = "linear",
    beta_max: float = 1.0,
    ramp_steps: int = 1000,
    cycles: int = 4,
    ramp_fraction: float = 0.5,
    total_steps: int | None = None,
) -> float:
    """beta at a training step.

    Args:
        step: training batches seen so far (0-based).
        schedule: "none" (always ``beta_max``), "linear" (0 -> ``beta_max`` over ``ramp_steps``,
            then constant) or "cyclical" (Fu et al. 2019: ``cycles`` periods over ``total_steps``;
            in each, beta ramps up during the first ``ramp_fraction`` and stays at ``beta_max``).
        beta_max: final weight.
        ramp_steps: length of the linear ramp; for "cyclical" without ``total_steps``, the
            length of one period is ``ramp_steps / ramp_fraction``.
        cycles: number of periods of the cyclical schedule.
        ramp_fraction: fraction of a period spent ramping (cyclical).
        total_steps: training length the cyclical periods divide; None = unbounded periods.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, received {schedule!r}")
    if ramp_steps < 1 or not 0.0 < ramp_fraction <= 1.0 or cycles < 1:
        raise ValueError(
            "need ramp_steps >= 1, 0 < ramp_fraction <= 1, cycles >= 1; received "
            f"ramp_steps={ramp_steps}, ramp_fraction={ramp_fraction}, cycles={cycles}"
        )
    if schedule == "none":
        return float(beta_max)
    if schedule == "linear":
        return float(beta_max) * min(1.0, step / ramp_steps)
    if total_steps is not None and step >= total_steps:
        # After the planned periods, stay at the target weight.
        return float(beta_max)
    period = total_steps / cycles if total_steps else ramp_steps / ramp_fraction
    position = (step % period) / period
    return float(beta_max) * min(1.0, position / ramp_fraction)


class KLAnnealing(keras.callbacks.Callback):
    """Sets ``model.beta`` (a ``keras.Variable``) before every training batch.

    Args:
        schedule, beta_max, cycles, ramp_fraction: as ``beta_schedule``.
        ramp_epochs: epochs of one linear ramp (converted to steps with ``steps_per_epoch``);
            for "cyclical", the epochs of one period's ramp.
        steps_per_epoch: training batches per epoch; None: read from ``params`` when fitting.
        delay_epochs: epochs at beta = 0 before the schedule starts (VaDE's pretraining).
        total_epochs: cyclical: epochs over which the ``cycles`` periods are spread (then
            ``ramp_epochs`` is not used); None: periods of ``ramp_epochs / ramp_fraction``
            epochs repeat for as long as training lasts.

    Example:
        >>> vae.fit(data, epochs=30, callbacks=[KLAnnealing("cyclical", ramp_epochs=5)])
    """

    def __init__(
        self,
        schedule: str = "linear",
        *,
        beta_max: float = 1.0,
        ramp_epochs: float = 10,
        cycles: int = 4,
        ramp_fraction: float = 0.5,
        steps_per_epoch: int | None = None,
        delay_epochs: float = 0,
        total_epochs: int | None = None,
    ):
        super().__init__()
        beta_schedule(0, schedule=schedule, cycles=cycles, ramp_fraction=ramp_fraction)
        if ramp_epochs <= 0:
            raise ValueError(f"ramp_epochs must be > 0, received {ramp_epochs}")
        self.schedule = schedule
        self.beta_max = beta_max
        self.ramp_epochs = ramp_epochs
        self.cycles = cycles
        self.ramp_fraction = ramp_fraction
        self.steps_per_epoch = steps_per_epoch
        self.delay_epochs = delay_epochs
        self.total_epochs = total_epochs
        self.step = 0

    def _steps_per_epoch(self) -> int:
        steps = self.steps_per_epoch or (self.params or {}).get("steps")
        if not steps:
            raise ValueError(
                "KLAnnealing needs the number of batches per epoch: pass steps_per_epoch= "
                "(fit on a dataset of unknown length does not report it)"
            )
        return int(steps)

    def value(self, step: int) -> float:
        steps = self._steps_per_epoch()
        step -= int(round(self.delay_epochs * steps))
        if step < 0:
            return 0.0
        epochs = self.total_epochs if self.schedule == "cyclical" else None
        total = int(epochs * steps) if epochs else None
        if total is not None:
            # The ramp of each period is ramp_fraction of it; ramp_epochs is then not used.
            ramp_steps = max(1, int(total / self.cycles * self.ramp_fraction))
        else:
            ramp_steps = max(1, int(round(self.ramp_epochs * steps)))
        return beta_schedule(
            step,
            schedule=self.schedule,
            beta_max=self.beta_max,
            ramp_steps=ramp_steps,
            cycles=self.cycles,
            ramp_fraction=self.ramp_fraction,
            total_steps=total,
        )

    def on_train_begin(self, logs=None):
        # Resumed runs continue the schedule where the optimizer's step counter stands.
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        self.step = int(iterations.numpy()) if iterations is not None else 0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.beta.assign(self.value(self.step))
        self.step += 1
