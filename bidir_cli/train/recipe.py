"""The training recipe, top to bottom: config, data, model, loss, arguments, trainer, save, evaluate.

Everything that can be wrong with the input (config, data, model, loss options, run directory) is
checked before the run directory is touched, so a typo never leaves a half-written run behind.
The CLI imports this module only when ``bidir train`` runs, so its heavy imports cost ``--help`` nothing.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sentence_transformers import SentenceTransformerTrainer

from ..config.schema import Config, config_to_yaml, load_config
from ..console import library_output, log
from ..errors import InputError
from ..runs.atomic import atomic_write_text
from ..runs.environment import (
    code_version,
    cpu_description,
    git_commit,
    installed_packages,
    now,
    versions,
    where_running,
)
from ..runs.meta import RunMeta
from ..runs.rundir import RunDir, checkpoint_step, prepare_run_dir, start_run
from ..runs.train_log import TrainLog
from .arguments import training_arguments
from .stopping import StopSignal, interrupted_note

if TYPE_CHECKING:
    from ..eval.command import EvalSuite
    from ..runs.results import EvalResult


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training stops, the last good checkpoint stays."""


def train_command(
    config_path: Path,
    *,
    overrides: list[str],
    output_dir: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    dry_run: bool = False,
    untrained: bool = False,
) -> RunDir | None:
    """``bidir train``: returns the run directory (None for ``--dry-run``). ``untrained``: save the config's model
    as it is before its first step (an experiment's untrained column), train and evaluate nothing."""
    if untrained and resume:
        raise InputError("--untrained and --resume exclude each other: an untrained model has nothing to resume")
    import torch

    from ..eval.encode import precision_problem

    cfg = load_config(config_path, overrides)
    if problem := precision_problem(cfg.training.precision, torch.cuda.is_available()):
        raise InputError(f"{config_path}: training.{cfg.training.precision}: {problem}")
    base_dir = Path(config_path).resolve().parent
    run_path = Path(output_dir) if output_dir is not None else Path("runs") / cfg.name
    if dry_run:
        run = None
    elif is_main_process():
        run = prepare_run_dir(run_path, resume=resume, overwrite=overwrite)
    else:  # other ranks of a torchrun job: rank 0 owns the run directory
        run = RunDir(run_path)
    if resume and run is not None and is_main_process():
        check_same_config(run, cfg)

    from ..data.sources import load_training_data

    data = load_training_data(cfg.data, base_dir, cfg.training.seed)
    check_batch_size(cfg, data)
    suite = load_eval_suite(cfg, base_dir)
    args = training_arguments(cfg, data, RunDir(run_path))  # every trainer argument checked before the run starts
    if dry_run:
        print_dry_run(cfg, data, run_path)
        return None
    command = ["bidir", "train", str(config_path), *[a for o in overrides for a in ("--set", o)]]
    command += [*(["--output-dir", str(output_dir)] if output_dir else []), *(["--resume"] if resume else [])]
    command += ["--overwrite"] if overwrite else []
    if untrained:
        return save_untrained(
            cfg, data, run, overwrite=overwrite, config_path=config_path, command=command + ["--untrained"]
        )
    return train(cfg, data, run, args, suite=suite, resume=resume, overwrite=overwrite, config_path=config_path,
                 command=command)  # fmt: skip


def save_untrained(cfg: Config, data, run: RunDir, *, overwrite: bool, config_path: Path, command: list[str]) -> RunDir:
    """The config's model before its first step, built as :func:`train` builds it (the same seed first), saved
    into the run directory with its config and meta.json; no training, no evaluation."""
    import torch
    from transformers import set_seed

    from ..models.build import build_model
    from ..models.load import model_description

    set_seed(cfg.training.seed)
    model = build_model(cfg.model, data.texts())
    meta = RunMeta(
        status="starting", name=cfg.name, argv=command, config_path=str(Path(config_path).resolve()),
        seed=cfg.training.seed, started=now(), versions=versions(), installed=installed_packages(),
        git_commit=git_commit(Path(__file__).parent), code=code_version(), threads=torch.get_num_threads(),
        cpu=cpu_description(), model={"source": cfg.model.name_or_path or "static", **model_description(model)},
        data={"sources": [s.identity for s in data.sources], "rows": data.rows, "sampling": cfg.data.sampling},
        config=cfg.model_dump(mode="json"), note="the untrained model of this config (before its first step)",
        where=where_running(),
    )  # fmt: skip
    start_run(run, meta, overwrite=overwrite)  # meta.json first: the folder is recognisably bidir's
    atomic_write_text(run.config, config_to_yaml(cfg))
    save_model(model, run.model)
    meta.status, meta.ended = "completed", now()
    run.write_meta(meta)
    log(f"untrained model of {cfg.name} saved: {run.model}")
    return run


def check_same_config(run: RunDir, cfg: Config) -> None:
    """A resumed run must continue the same config, or its checkpoints mean something else."""
    import yaml

    saved = yaml.safe_load(run.config.read_text(encoding="utf-8")) if run.config.exists() else None
    current = cfg.model_dump(mode="json")
    if saved is not None and saved != current:
        changed = sorted(k for k in current if saved.get(k) != current[k])
        raise InputError(f"{run.config}: the config differs from the run's in {', '.join(changed)}; cannot resume")


def check_batch_size(cfg: Config, data) -> None:
    sizes = [(s.name, len(s.dataset)) for s in data.sources]
    if data.concatenate:
        sizes = [("+".join(name for name, _ in sizes), sum(n for _, n in sizes))]
    for name, rows in sizes:
        if (size := cfg.training.per_device_train_batch_size) > rows:
            raise InputError(
                f"training.per_device_train_batch_size: {size} is larger than training source {name!r} ({rows} rows)"
            )


def load_eval_suite(cfg: Config, base_dir: Path) -> EvalSuite | None:
    """The evaluation suite of the config, loaded now: a bad suite fails before training, and the data is
    read once for the evaluations during training and the final one."""
    from ..eval.command import load_suite
    from ..eval.suites import suite_spec

    if cfg.evaluation.suite is None:
        return None
    spec = suite_spec(cfg.evaluation.suite, base_dir)
    if spec.lower() == "nanobeir" or spec.startswith("demo:") or Path(spec).exists():  # demo:NAME checked later
        return load_suite(spec, ",".join(cfg.evaluation.datasets) if cfg.evaluation.datasets else None)
    raise InputError(f"evaluation.suite: {cfg.evaluation.suite}: no such suite folder or file")


def print_dry_run(cfg: Config, data, run_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    print(config_to_yaml(cfg), end="")
    table = Table(title=f"training data (run directory: {run_path})")
    for column in ("source", "rows", "negatives", "held out", "hash"):
        table.add_column(column)
    for s in data.sources:
        held_out = str(len(s.eval_dataset)) if s.eval_dataset is not None else "-"
        table.add_row(s.name, str(len(s.dataset)), str(s.num_negatives), held_out, s.identity["hash"][:12])
    Console(file=sys.stdout).print(table)


def train(
    cfg: Config,
    data,
    run: RunDir,
    args,
    *,
    suite: EvalSuite | None,
    resume: bool,
    overwrite: bool,
    config_path: Path,
    command: list[str],
) -> RunDir:
    import torch
    from transformers import set_seed

    from ..losses import build_loss
    from ..models.build import build_model
    from ..models.load import model_description
    from .model_card import describe_training_data, write_model_card

    set_seed(cfg.training.seed)
    model = build_model(cfg.model, data.texts())
    describe_training_data(model, data.sources, data.concatenate, cfg.training.hub_model_id)
    try:
        loss = build_loss(model, cfg.loss)
    except ValueError as e:
        raise InputError(f"loss: {e}") from None

    checkpoint = run.last_checkpoint() if resume else None
    if resume and is_main_process():
        log(
            f"resuming from {checkpoint.name}"
            if checkpoint
            else "no checkpoint to resume from: training starts again from step 0"
        )
    previous = (run.read_meta() if resume else None) or RunMeta(status=None, name=cfg.name)
    meta = RunMeta(
        status="starting",
        name=cfg.name,
        argv=command,
        config_path=str(Path(config_path).resolve()),
        seed=cfg.training.seed,
        started=previous.started or now(),
        wall_time_s_before=previous.wall_time_s or 0.0,
        resumed=[*previous.resumed, now()] if resume else [],
        resumed_from=str(checkpoint) if checkpoint else None,
        versions=versions(),
        installed=installed_packages(),
        git_commit=git_commit(Path(__file__).parent),
        code=code_version(),
        device=str(args.device),
        world_size=args.world_size,
        global_batch=args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps,
        threads=torch.get_num_threads(),  # CPU threads change both the speed and the float results
        where=where_running(),
        cpu=cpu_description(),  # and so do the CPU's vector instructions
        model={"source": cfg.model.name_or_path or "static", **model_description(model)},
        loss=cfg.loss.settings(),
        data={"sources": [s.identity for s in data.sources], "rows": data.rows, "sampling": cfg.data.sampling},
        config=cfg.model_dump(mode="json"),
        train=previous.train,  # the processes before a resume: record() keeps what this one does not measure
    )
    if is_main_process():
        start_run(run, meta, overwrite=overwrite)  # meta.json first: the folder is recognisably bidir's
        atomic_write_text(run.config, config_to_yaml(cfg))
        if checkpoint is None:
            TrainLog(run.train_log).start()
        else:
            TrainLog(run.train_log).truncate(checkpoint_step(checkpoint))
    trainer = make_trainer(cfg, model, loss, data, run, args, suite)
    meta.status = "running"
    if is_main_process():
        run.write_meta(meta)

    started = time.perf_counter()
    stopped = StopSignal()
    try:
        if checkpoint is not None and (last := final_state(checkpoint)) is not None:
            # transformers' Trainer resumed from the checkpoint of its last step trains one step more when that
            # step ends mid-epoch (measured with 5.24: a 6-step run resumed from checkpoint-6 ended at step 7, its
            # model no longer the uninterrupted run's). Nothing is left to train: load the checkpoint instead.
            trainer._load_from_checkpoint(str(checkpoint))
            trainer.state = last
        else:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except KeyboardInterrupt:
        record(run, meta, trainer, started, "interrupted", note=interrupted_note(run, stopped.name))
        raise
    except BaseException as e:
        record(run, meta, trainer, started, "failed", note=f"{type(e).__name__}: {e}")
        raise
    finally:
        stopped.restore()

    if is_main_process():
        save_model(model, run.model)
        record(run, meta, trainer, started, "running")  # training done, evaluation to come
        result, results_file = final_evaluation(run, suite, cfg.evaluation.batch_size) if suite else (None, None)
        write_model_card(model, run, meta, result, results_file)  # the card carries the final evaluation
        meta.status, meta.ended = "completed", now()
        run.write_meta(meta)
        log(f"run {cfg.name} completed in {meta.wall_time_s:.1f} s: {run.path}")
        if cfg.training.push_to_hub:  # after the final evaluation; a failed push leaves the run completed
            from .hub import push_model

            meta.push = push_model(model, run, cfg.training)
            run.write_meta(meta)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return run


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def final_state(checkpoint: Path):
    """The trainer state of a checkpoint taken at the run's last step, or None for an earlier checkpoint."""
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return state if state.max_steps and state.global_step >= state.max_steps else None


def final_evaluation(run: RunDir, suite: EvalSuite, batch_size: int) -> tuple[EvalResult, Path]:
    """Evaluate the saved model as ``bidir eval RUN`` would (same numbers), write its results file, print its table.

    The model is loaded again from ``run/model``, so the results describe the files a user evaluates later.
    A freshly trained model is rarely evaluated twice: the corpus-embedding cache is not used.
    """
    from ..eval.command import evaluate
    from ..eval.render import render_eval, results_console
    from ..models.load import load_for_evaluation

    model, model_info, _ = load_for_evaluation(str(run.path))
    result = evaluate(model, suite.datasets, suite=suite.suite, model_info=model_info, batch_size=batch_size)
    path = result.store(run.results_file(result.stem), numbered=True)
    log(f"results written to {path}")
    render_eval(result, results_console())
    return result, path


def record(run: RunDir, meta: RunMeta, trainer, started: float, status: str, note: str | None = None) -> None:
    """Write the run's status, times and throughput to meta.json (main process only)."""
    import torch

    if not is_main_process():
        return
    seconds = time.perf_counter() - started
    from .callbacks import examples_per_step

    examples = (trainer.state.global_step - checkpoint_step(meta.resumed_from)) * examples_per_step(trainer.args)
    before = meta.train  # a resumed run's figures from the processes before it (empty for a new run)
    meta.train = {
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": trainer.state.epoch,
        # A run resumed from its last checkpoint trains no step here: the rate measured before stands.
        "examples_per_second": examples / seconds if examples and seconds > 0 else before.get("examples_per_second"),
        "peak_memory_bytes": max(peak_memory(), before.get("peak_memory_bytes") or 0),  # over every process
        "peak_memory_kind": "cuda max_memory_allocated" if torch.cuda.is_available() else "process peak RSS",
    }
    meta.wall_time_s = meta.wall_time_s_before + seconds
    meta.status, meta.ended = status, now()
    if note:
        meta.note = note
    run.write_meta(meta)


def peak_memory() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def save_model(model, path: Path) -> None:
    """Save to a temporary folder, then rename: a crash never leaves half a model."""
    import shutil

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def make_trainer(cfg: Config, model, loss, data, run: RunDir, args, suite: EvalSuite | None):
    """SentenceTransformerTrainer with our arguments and callbacks (log file, progress on stderr)."""
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from .callbacks import ProgressBar, TrainLogWriter

    evaluator = None
    if cfg.evaluation.during_training:
        from .evaluator import TrainingEvaluator

        evaluator = TrainingEvaluator(suite, cfg.evaluation.batch_size)
    with library_output("sentence-transformers"):  # its model card's "Computing widget examples" bar, its notes
        trainer = BidirTrainer(
            model=model, args=args, train_dataset=data.train, eval_dataset=data.eval, loss=loss, evaluator=evaluator
        )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):  # the run directory, not checkpoints/runs/<date_host>
            callback.logging_dir = str(run.tensorboard)
    trainer.add_callback(TrainLogWriter(run.train_log, is_main_process()))
    trainer.add_callback(ProgressBar())
    return trainer


class BidirTrainer(SentenceTransformerTrainer):
    """Stops at the first non-finite loss, naming the step (the trainer would log it and carry on), and adds the
    bidirectional losses' partition shares to the trainer's logs, so that every tracker and callback gets them."""

    def __init__(self, *args, **kwargs) -> None:
        from ..losses import partition_tracker

        super().__init__(*args, **kwargs)
        self.partition = partition_tracker(self.loss)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        from .callbacks import partition_logs

        if "loss" in logs and self.partition is not None and (shares := self.partition.pop()) is not None:
            logs = {**logs, **partition_logs(shares)}  # the shares since the previous training log
        super().log(logs, start_time)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = out[0] if isinstance(out, tuple) else out
        if model.training and not math.isfinite(loss.detach().float().item()):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {self.state.global_step + 1}; the last good checkpoint is kept"
                " (one known cause: a text that embeds to a zero vector, an empty one say, gets gradients near 1e12"
                " through the cosine normalisation, enough to wreck the weights; see the loss docstrings)"
            )
        return out
