"""How a training stops early and says so: SIGTERM (a scheduler's cancel, preemption or time limit) treated as
Ctrl-C, and the note an interrupted run's meta.json carries (where it resumes from, and how)."""

from __future__ import annotations

import os

from ..runs.rundir import RunDir, checkpoint_step


class StopSignal:
    """While training, SIGTERM (a scheduler's cancel, preemption or time limit) stops the run as Ctrl-C does: the run
    is recorded interrupted, resumable from its last checkpoint. :attr:`name` is the signal that came."""

    def __init__(self) -> None:
        import signal
        import threading

        self.name = "SIGINT"
        self.saved = None
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGTERM, self._terminate)

    def _terminate(self, signum, frame) -> None:
        self.name = "SIGTERM"
        raise KeyboardInterrupt

    def restore(self) -> None:
        import signal

        if self.saved is not None:
            signal.signal(signal.SIGTERM, self.saved)


def interrupted_note(run: RunDir, signal_name: str) -> str:
    """What an interrupted run's meta.json says: what stopped it, where it resumes from, and how (an experiment
    sets its own advice in ``BIDIR_RESUME_ADVICE``)."""
    checkpoint = run.last_checkpoint()
    where = (
        f"resumable from step {checkpoint_step(checkpoint)}"
        if checkpoint
        else "no checkpoint yet: a resume starts from step 0"
    )
    return f"stopped by {signal_name}; {where}; {os.environ.get('BIDIR_RESUME_ADVICE', 'continue with --resume')}"
