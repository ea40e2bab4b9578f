"""Trainer callbacks: the train_log.jsonl writer and the progress bar on standard error, and the names under
which the partition shares travel in the trainer's logs (``train.BidirTrainer.log`` puts them there, so that
every tracker of ``training.report_to`` gets them too)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from ..losses import PARTITION_STATS
from ..runs.train_log import TrainLog

# a partition diagnostic -> its key in the trainer's logs (TensorBoard tags allow no ">": q->d is partition/q_to_d)
PARTITION_LOG_KEYS = {stat: "partition/" + stat.replace("->", "_to_") for stat in PARTITION_STATS}


def partition_logs(shares: dict[str, float]) -> dict[str, float]:
    """The partition diagnostics as flat keys of the trainer's logs."""
    return {PARTITION_LOG_KEYS[stat]: value for stat, value in shares.items()}


def partition_from_logs(logs: dict) -> dict[str, float] | None:
    """The partition diagnostics back from the trainer's logs, under their own names; None when absent."""
    shares = {stat: logs[key] for stat, key in PARTITION_LOG_KEYS.items() if key in logs}
    return shares or None


def examples_per_step(args) -> int:
    """Training examples consumed by one optimizer step, over every process and accumulated batch."""
    return args.train_batch_size * args.world_size * args.gradient_accumulation_steps


class TrainLogWriter(TrainerCallback):
    """Append one JSON line per logging step: step, epoch, loss, learning rate, examples/s, and for the
    bidirectional losses how the softmax partition splits across its four blocks.

    ``partition`` holds each block's mean share of the softmax mass (``q->d``, ``q->q``, ``d->q``,
    ``d->d``; they sum to 1) and the mean mass of the positive entry (at most 0.5, since the positive
    pair also appears in d->q), averaged over the steps since the previous line and over every row of the world
    batch, and recorded at the full embedding dimension only under MatryoshkaLoss (see
    :class:`~bidir_cli.losses.PartitionTracker`).
    """

    def __init__(self, path: Path, write: bool = True) -> None:
        self.log = TrainLog(path)
        self.write = write
        self._last_time: float | None = None
        self._last_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time, self._last_step = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            now = time.perf_counter()
            steps = state.global_step - self._last_step
            examples = steps * examples_per_step(args)
            record = {
                "step": state.global_step,
                "epoch": state.epoch,
                "loss": logs["loss"],
                "learning_rate": logs.get("learning_rate"),
                "grad_norm": logs.get("grad_norm"),
                "examples_per_second": examples / (now - self._last_time) if now > self._last_time else None,
            }
            if (partition := partition_from_logs(logs)) is not None:
                record["partition"] = partition
            self._last_time, self._last_step = now, state.global_step
        elif any(k.startswith("eval_") for k in logs):
            record = {"step": state.global_step, "epoch": state.epoch, **logs}
        else:
            return
        if self.write:
            self.log.append(record)


class ProgressBar(TrainerCallback):
    """Progress on standard error: on a terminal a tqdm bar with the latest loss, learning rate and examples per
    second; elsewhere (a log file) the same figures as one line per logging step, never a carriage return."""

    def __init__(self) -> None:
        self.bar = None
        self.lines = False
        self._last = (0.0, 0)

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            if sys.stderr.isatty():
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", file=sys.stderr,
                                dynamic_ncols=True)  # fmt: skip
            self.lines = self.bar is None
            self._last = (time.perf_counter(), state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if (self.bar is None and not self.lines) or not logs or "loss" not in logs:
            return
        now, step = time.perf_counter(), state.global_step
        examples = (step - self._last[1]) * examples_per_step(args)
        rate = examples / (now - self._last[0]) if now > self._last[0] else 0.0
        self._last = (now, step)
        figures = {"loss": f"{logs['loss']:.4f}", "lr": f"{logs.get('learning_rate', 0):.2e}", "ex_s": f"{rate:.0f}"}
        if self.bar is not None:
            self.bar.set_postfix(**figures)
        else:
            print(f"bidir: train: step {step}/{state.max_steps}: " + ", ".join(f"{k} {v}" for k, v in figures.items()),
                  file=sys.stderr, flush=True)  # fmt: skip

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
