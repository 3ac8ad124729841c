"""`gan train`: the training loop and nothing else (stylegan2-ada's training_loop.py spirit).

Runs each phase of the family's objective, keeps the EMA generator, logs a row per
`log_every` steps, saves fixed-latent grids and checkpoints, measures snapshots
(gan/training/snapshots.py) and exports the generator: the last, or the best snapshot.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gan.config import EvaluateConfig, TrainConfig, dump_section
from gan.data.shards import load_split
from gan.device import Precision, cpu_threads, pick_device, pick_precision
from gan.errors import GanError, Interrupted
from gan.export import save_export
from gan.grid import save_grid
from gan.io import check_writable, clean_stale_temps, read_json, write_json
from gan.lock import folder_lock
from gan.losses import grad_norm
from gan.models import get_family
from gan.models.family import DataInfo, StepContext
from gan.progress import progress
from gan.training import launch
from gan.training.budget import check_fits
from gan.training.checkpoint import (
    checkpoint_dir,
    latest_checkpoint,
    list_checkpoints,
    newest_readable,
    quarantine,
    save_checkpoint,
    set_aside,
)
from gan.training.distributed import (
    Ranks,
    assert_in_sync,
    average_gradients,
    broadcast_buffers,
    current,
)
from gan.training.ema import update_ema
from gan.training.inference import inference_copy, labels_for
from gan.training.interrupt import StopOnSignal
from gan.training.log import MetricsLog
from gan.training.preset import preset_lines, resolve_preset
from gan.training.session import Session
from gan.training.snapshots import Snapshots, snapshot_due
from gan.training.streams import Streams


def _log(msg: str) -> None:
    tqdm.write(f"[train] {msg}")


def _restore(session: Session, cfg: TrainConfig) -> None:
    """Resume from this run's latest checkpoint when it fits; otherwise warm-start or fresh.

    Every rank reads the same checkpoint; only rank 0 moves unfitting ones aside, after all
    have looked. An unreadable (e.g. truncated) newest checkpoint is renamed *.corrupt and
    the newest intact one is used instead. A missing or unfitting init_from fails even a
    resume, which does not use it: the same params would fail when the run starts afresh."""
    run_dir, ranks = cfg.run_dir, session.ranks
    init = session.read_init_from(cfg.init_from)  # resuming too (see above)
    found = list_checkpoints(run_dir)
    resumed, aside, broken = False, bool(found), []
    if found and cfg.resume:
        state, latest, broken = newest_readable(found)
        if state is None:
            raise GanError(f"no intact checkpoint to resume: {broken[0][1]}")
        if state["fingerprint"] == session.fingerprint and state["step"] <= cfg.steps:
            session.load_state_dict(state, latest)
            resumed, aside = True, False
            if ranks.main:
                for path, reason in broken:
                    _log(f"{reason}; moved to {quarantine(path).name}, using {latest.name}")
                _log(f"resumed from {latest} at step {session.step}")
    ranks.barrier()
    if aside and ranks.main:
        moved = set_aside(run_dir, cfg.keep_set_aside)
        if cfg.resume:
            where = f"moved to {moved}" if moved else "deleted (train.keep_set_aside: 0)"
            _log(f"checkpoints in {run_dir} are from other params or data; {where}")
    ranks.barrier()
    if not resumed and init is not None:
        session.warm_start(init, cfg.init_from)
        if ranks.main:
            _log(f"warm-started networks from {cfg.init_from}")


def _grid(session: Session, cfg: TrainConfig, paths: list[Path], G=None) -> None:
    """The fixed-latent grid at `paths`, from `G` or a fresh inference copy of G_ema."""
    family, device = session.family, session.precision.device
    labels_of = labels_for(session.data.num_classes)
    if G is None:
        G = inference_copy(family.nets[family.export_net], family, labels_of)
    gen = torch.Generator(device=device).manual_seed(Streams(cfg.seed).seed("grid"))
    labels = labels_of(cfg.grid_size, device) if labels_of else None
    with torch.no_grad():
        images = family.preview(G, cfg.grid_size, gen, labels=labels)
    for path in paths:
        save_grid(images, path, scale=max(1, 64 // session.data.resolution))


def run_phases(session: Session, step: int, measure: bool) -> dict[str, float]:
    """One training step: every phase due at `step`, each optimiser stepped once per repeat.

    Returns the log row on `measure` steps (numbers read from the device only then); a lazy
    phase that did not run on this step, or a term its repeats skipped, shows its latest.
    Images seen (img/s) count each real batch drawn once, however many phases look at it."""
    grads: dict[str, torch.Tensor] = {}
    family, ctx = session.family, StepContext(step, schedule=session.scheduled(step))
    for phase in family.phases():
        if step % phase.every:
            continue
        opt = session.optimizers[phase.optimizer]
        for i in range(phase.repeats):
            last, ctx.repeat = i == phase.repeats - 1, i
            if i == 0 or last:  # the last repeat may also record the graph of another net
                graph_for = phase.graph_for if last and session.cfg.reuse_fake else None
                session.train_only(phase.optimizer, graph_for)
            if not ctx.batch or phase.fresh_batch:
                ctx.batch = session.loader.next()
                session.images_seen += family.batch_images(ctx.batch)
            autocast = nullcontext() if phase.fp32 else session.precision.autocast()
            with autocast:
                loss, extra = phase.loss(ctx)
            session.watch.record(phase.name, loss, step)
            opt.zero_grad(set_to_none=True)
            (loss * phase.every if phase.every > 1 else loss).backward()
            average_gradients(session.params_of(phase.optimizer), session.ranks)
            if measure:
                grads[f"gradnorm_{phase.name}"] = grad_norm(session.params_of(phase.optimizer))
            opt.step()
            # merged, not replaced: a term a repeat skipped (a lazy penalty) keeps its latest
            session.phase_logs.setdefault(phase.name, {}).update(
                {f"loss_{phase.name}": loss.detach()}
                | {f"{phase.name}_{k}": v for k, v in extra.items()}
            )
    if not measure:
        return {}
    logged = {k: v for logs in session.phase_logs.values() for k, v in logs.items()}
    logged |= session.augment.log_values()  # ADA's p and r_t, when it is on
    logged |= ctx.schedule.logged()  # the family's scheduled values (R3GAN's beta2, gamma)
    return {k: float(v) for k, v in (logged | grads).items()}


def end_step(session: Session, step: int) -> None:
    """After the phases: the lr schedules advance, every rank takes rank 0's buffers, and
    the EMA copies follow their nets."""
    family, cfg = session.family, session.cfg
    for sch in session.schedulers.values():
        sch.step()
    broadcast_buffers(family.nets.values(), session.ranks)
    beta = family.ema_beta(step, cfg.batch_size, cfg.ema)
    for ema_name, source in family.ema.items():
        update_ema(family.nets[ema_name], family.nets[source], beta)


StepHook = Callable[[int, Session], None]


def train(
    cfg: TrainConfig, evaluate: EvaluateConfig | None = None, hooks: list[StepHook] | None = None
) -> dict[str, Any]:
    """Train (or resume) the run in cfg.run_dir; returns the run summary also in run.json.

    `evaluate`: the settings snapshots are measured under (`train.metrics_every` needs
    them). `hooks` are called after every step with (steps done, session), e.g. to report
    an intermediate metric to an Optuna pruner; an exception from a hook ends the run.
    """
    device = pick_device(cfg.device)
    ranks = current()
    if cfg.world_size == 1 and not ranks.active and launch.launched_by_torchrun():
        raise GanError(  # each process would train alone and write the same files
            "torchrun started several processes but train.world_size is 1; set it to match"
        )
    if cfg.world_size > 1 and not ranks.active:
        if hooks:
            raise GanError("step hooks (e.g. an Optuna trial) need train.world_size 1")
        if not launch.launched_by_torchrun():
            with folder_lock(cfg.run_dir, "gan train"):  # the ranks it spawns take none
                return launch.spawn(cfg, device, functools.partial(train, evaluate=evaluate))
        ranks, joined = launch.join_torchrun(cfg.world_size, device), True
    elif ranks.world_size != cfg.world_size:
        raise GanError(
            f"train.world_size is {cfg.world_size} but the process group has "
            f"{ranks.world_size} processes"
        )
    else:
        joined = False  # single process, or a rank of a group someone else created
    try:
        with (
            launch.run_lock(cfg, ranks, owner=joined or not ranks.active),
            cpu_threads(cfg.threads),
        ):
            return _train(cfg, evaluate, hooks, ranks.device(device), ranks)
    finally:
        if joined:
            torch.distributed.destroy_process_group()


def precision_for(cfg: TrainConfig, device: torch.device) -> Precision:
    """The run's precision and layout: its params, with `auto` resolved for the family."""
    family = get_family(cfg.model.family)
    return pick_precision(
        device, cfg.precision, cfg.channels_last, family.cpu_channels_last, family.cpu_bf16
    )


def _train(
    cfg: TrainConfig,
    evaluate: EvaluateConfig | None,
    hooks: list[StepHook] | None,
    device: torch.device,
    ranks: Ranks,
) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = precision_for(cfg, device)
    split = load_split(cfg.data, "train")
    data = DataInfo.from_manifest(split.manifest)
    cfg, preset = resolve_preset(cfg, data)  # every rank derives the same values
    _check_batch(cfg, split)
    run_dir = cfg.run_dir
    if ranks.main:  # fail now, not at the first checkpoint; drop temps of killed writes
        check_writable(run_dir)
        for d in (run_dir, checkpoint_dir(run_dir), run_dir / "samples", run_dir / "export"):
            clean_stale_temps(d)
    check_fits(cfg, data, precision.device)
    session = Session(cfg, split, precision, ranks)
    if ranks.main:
        _log(f"precision: {precision.describe()}")
        for line in preset_lines(preset):
            _log(line)
        session.snapshots = Snapshots.start(cfg, evaluate, session)  # rank 0 measures
    _restore(session, cfg)
    main = ranks.main  # only rank 0 writes: log, grids, checkpoints, export, progress
    log = MetricsLog(run_dir / "log.csv", resume_step=session.step) if main else None
    start_step, t0 = session.step, time.perf_counter()
    bar = progress(
        cfg.steps, "train", initial=start_step, unit="step", disable=not (cfg.progress and main)
    )
    ckpt = latest_checkpoint(run_dir)
    stop = StopOnSignal(enabled=not ranks.active)
    with stop:
        ckpt, stopped = _steps(session, cfg, hooks, log, bar, stop, ckpt)
    if stopped:
        bar.close()
        kept = f"the last good checkpoint is {ckpt}" if ckpt else "no checkpoint was written yet"
        raise GanError(f"training stopped: {stopped}; {kept}")
    bar.close()
    seconds = time.perf_counter() - t0
    assert_in_sync(session.family.nets, ranks)
    if not ranks.main:
        return {"rank": ranks.rank}
    summary = _finish(session, cfg, seconds, start_step, preset)
    log.image(run_dir / "samples.png")  # the final grid, for dvclive's readers
    log.end()
    return summary


def _steps(
    session: Session,
    cfg: TrainConfig,
    hooks: list[StepHook] | None,
    log: MetricsLog | None,
    bar: Any,
    stop: StopOnSignal,
    ckpt: Path | None,
) -> tuple[Path | None, str | None]:
    """The step loop; returns (latest checkpoint, why training stopped or None)."""
    ranks, run_dir = session.ranks, cfg.run_dir
    device, main, stopped = session.precision.device, ranks.main, None
    seen, last_time = session.images_seen, time.perf_counter()
    for step in range(session.step, cfg.steps):
        done = step + 1
        last = done == cfg.steps
        snapshot = snapshot_due(cfg, done)  # a logging step too, on every rank
        measure = done % cfg.log_every == 0 or last or snapshot
        row = run_phases(session, step, measure)
        saving = done % cfg.checkpoint_every == 0 or last
        if measure or saving or hooks:  # never checkpoint, log or report diverged weights
            stopped = session.watch.problem(ranks)
            if stopped:
                break
        end_step(session, step)
        session.step = done
        bar.update(1)
        if measure:
            row = ranks.mean_scalars(row, device)
        if measure and log is not None:
            now = time.perf_counter()
            img_s = (session.images_seen - seen) * ranks.world_size / max(now - last_time, 1e-9)
            lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in session.optimizers.items()}
            row = {"step": done, **row, **lrs, "img_per_s": img_s}
            if snapshot and session.snapshots is not None:
                row |= session.snapshots.take(done)
            log.append(row)  # img/s counts training alone: the clock restarts after it
            last_time, seen = time.perf_counter(), session.images_seen
            bar.set_postfix(
                {k: f"{v:.3g}" for k, v in row.items() if k.startswith(("loss_", "snapshot_fid"))}
                | {"img/s": f"{img_s:.0f}"}
            )
        if main and done % cfg.sample_every == 0 and not last:  # the last: _finish's copy
            _grid(session, cfg, [run_dir / "samples" / f"step-{done:08d}.png"])
            log.image(run_dir / "samples" / f"step-{done:08d}.png")
        if saving:
            state = session.state_dict()  # collective: gathers every rank's random streams
            if main:
                ckpt = _save(run_dir, done, state, cfg, ckpt)
        for hook in hooks or ():
            hook(done, session)
        if stop.requested and not last:
            if not saving:
                ckpt = _save(run_dir, done, session.state_dict(), cfg, ckpt)
            bar.close()
            raise Interrupted(
                f"{stop.name}: training stopped at step {done} of {cfg.steps}, saved {ckpt}; "
                "run it again to resume",
                128 + stop.signum,
            )
    return ckpt, stopped


def _save(run_dir: Path, step: int, state: dict, cfg: TrainConfig, last_good: Path | None) -> Path:
    """save_checkpoint; a failed write names the checkpoint that is still good."""
    try:
        return save_checkpoint(run_dir, step, state, cfg.keep_checkpoints)
    except GanError as exc:
        kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint yet"
        raise GanError(f"{exc}; {kept}") from None


def _check_batch(cfg: TrainConfig, split) -> None:
    """A batch cannot be larger than any set the family draws it from whole."""
    sources = get_family(cfg.model.family).batch_sources(split)
    where, smallest = min(sources.items(), key=lambda kv: kv[1])
    if cfg.batch_size > smallest:
        raise GanError(
            f"train.batch_size {cfg.batch_size} is larger than the {smallest} training images "
            f"in {where}train.data {cfg.data}; lower it"
        )


def _finish(
    session: Session, cfg: TrainConfig, seconds: float, start_step: int, preset: dict | None
) -> dict[str, Any]:
    family, run_dir, snapshots = session.family, cfg.run_dir, session.snapshots
    grids = [run_dir / "samples" / f"step-{cfg.steps:08d}.png", run_dir / "samples.png"]
    if cfg.export == "best" and snapshots is not None:
        G, export_step = snapshots.export_generator()
        _grid(session, cfg, grids[:1])  # the last step's grid; samples.png shows the export
        grids = grids[1:]
    else:
        labels = labels_for(session.data.num_classes)
        G, export_step = inference_copy(family.nets[family.export_net], family, labels), cfg.steps
    classes = read_json(Path(cfg.data) / "manifest.json").get("classes") or None
    save_export(
        run_dir / "export", family.name, dump_section(cfg.model), session.data, G, classes=classes
    )
    _grid(session, cfg, grids, G)  # the export's sampling statistics serve its grids too
    ckpt = latest_checkpoint(run_dir)
    images = session.images_seen * session.ranks.world_size
    summary = {
        "run_id": f"{cfg.run}-{session.fingerprint}-{cfg.steps}",
        "run": cfg.run,
        "family": family.name,
        "params": session.params,
        **({"preset": preset} if preset else {}),  # what train.model.preset derived
        "fingerprint": session.fingerprint,
        "data": cfg.data,
        "data_hash": session.data_hash,
        "steps": cfg.steps,
        "resumed_from_step": start_step,
        "checkpoint": str(ckpt) if ckpt else None,
        "export": str(run_dir / "export"),
        "export_step": export_step,  # train.export: best picks an earlier one
        **({"snapshots": snapshots.summary()} if snapshots is not None else {}),
        "device": str(session.precision.device),
        "world_size": session.ranks.world_size,
        "bf16": session.precision.bf16,
        "precision": session.precision.describe(),
        "seconds": round(seconds, 2),
        "img_per_s": round(images / seconds, 1) if seconds > 0 and images else None,
    }
    write_json(run_dir / "run.json", summary)
    _log(f"done: {cfg.steps} steps, export (step {export_step}) in {run_dir / 'export'}")
    return summary
