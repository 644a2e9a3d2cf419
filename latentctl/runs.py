"""What a training run is, in one place: starting a new one or resuming one, for the CLI, the demo
and Python callers alike.

``plan`` turns what the user asked for (``None`` = not given) into the configs a run trains with:
recipe defaults for the architecture and family (``recipes.train_defaults``), and, on resume, the stored
configs with the explicit options applied (a change to anything that alters what a step computes
is refused). ``open_data`` decodes the folder and, on resume, checks it is the same set of
pictures. ``start`` creates the run folder and writes the skipped-files list. ``execute`` trains in
one process, in ``devices`` worker processes, or as one rank of a torchrun group, and makes the run
current as soon as it has a checkpoint (never before: a run that failed before its first save
would leave a bare ``latentctl sample`` with nothing to load).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentctl.config import RESUMABLE_KEYS, ModelConfig, TrainConfig, config_differences, to_dict
from latentctl.errors import ConfigMismatchError, DataError, LatentctlError, UsageError
from latentctl.recipes import model_defaults, train_defaults
from latentctl.workspace import CHECKPOINT_NAME, Workspace, slug


@dataclass
class RunPlan:
    data: Path
    model: ModelConfig
    train: TrainConfig
    target: Path | None  # the run folder: chosen by start() for a new run without --run-dir
    name: str
    resume_from: Path | None = None  # the checkpoint a resumed run continues from
    resume_state: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def resuming(self) -> bool:
        return self.resume_from is not None


def plan(
    ws: Workspace,
    *,
    data: Path | None = None,
    resume: Path | None = None,
    run_dir: Path | None = None,
    name: str | None = None,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> RunPlan:
    """The configs a run will train with. ``model`` / ``train`` hold the options the user gave
    (``None`` values are "not given")."""
    from latentctl import checkpoint

    given_model = {k: v for k, v in (model or {}).items() if v is not None}
    given_train = {k: v for k, v in (train or {}).items() if v is not None}
    if resume is not None:
        if run_dir is not None:
            raise UsageError("--run-dir and --resume both name a run folder; give only --resume")
        ckpt = ws.resolve_checkpoint(resume)
        info = checkpoint.read_header(ckpt)
        if info.kind != checkpoint.KIND_TRAINING or info.train is None:
            raise UsageError(f"{ckpt} holds only a generator and cannot be resumed")
        model_cfg, train_cfg = _merge([(info.model, given_model), (info.train, given_train)])
        stored_root = Path(info.state["data"]["root"])
        if data is not None and Path(data).expanduser().resolve() != stored_root:
            raise ConfigMismatchError(
                f"--resume: the run trained on {stored_root}, not {data}; leave DIR out to continue on its data"
            )
        return RunPlan(stored_root, model_cfg, train_cfg, ckpt.parent, ckpt.parent.name, ckpt, info.state)
    if data is None:
        raise UsageError("say which folder of images to train on: latentctl train DIR")
    arch = given_model.get("arch", "seed")
    model_cfg = ModelConfig(**{**model_defaults(arch), **given_model})
    train_cfg = TrainConfig(**{**train_defaults(arch, model_cfg), **given_train})
    data = Path(data).expanduser()
    if not data.is_dir():
        why = "it is a file" if data.exists() else "it does not exist"
        raise DataError(f"{data} is not a folder of images ({why})")
    family = "" if model_cfg.family == "gan" else model_cfg.family + "-"
    arch_part = "" if model_cfg.arch == "seed" else model_cfg.arch + "-"
    run_name = name or f"{slug(data.resolve().name)}-{arch_part}{family}{model_cfg.image_size}px"
    return RunPlan(data, model_cfg, train_cfg, Path(run_dir).expanduser() if run_dir else None, run_name)


def open_data(
    plan: RunPlan, ws: Workspace, *, strict: bool = False, progress: Callable[[int, int], None] | None = None
):
    """Decode (or reuse the cache of) the run's pictures; on resume they must be the same ones."""
    from latentctl.data import prepare_dataset

    dataset = prepare_dataset(
        plan.data,
        plan.model.image_size,
        ws.cache,
        max_images=plan.train.max_images,
        seed=plan.train.seed,
        strict=strict,
        progress=progress,
        channels=plan.model.channels,
    )
    if plan.resuming:
        expected = plan.resume_state["data"]["fingerprint"]
        if dataset.fingerprint != expected:
            raise ConfigMismatchError(
                f"--resume: the images in {plan.data} changed since the run started (fingerprint "
                f"{expected} -> {dataset.fingerprint}); start a new run to train on the new set"
            )
    return dataset


def start(plan: RunPlan, ws: Workspace, dataset) -> Path:
    """Create the run folder of a new run (or take the resumed one) and list the skipped files."""
    from latentctl.data import write_skipped_list

    if plan.target is None:
        plan.target = ws.new_run_dir(plan.name)
    elif not plan.resuming:
        if plan.target.exists() and (not plan.target.is_dir() or any(plan.target.iterdir())):
            raise UsageError(
                f"--run-dir {plan.target} is not an empty folder; pick a new folder or resume it with --resume"
            )
        plan.target.mkdir(parents=True, exist_ok=True)
    if dataset.skipped:
        write_skipped_list(plan.target, dataset.skipped)
    return plan.target


def execute(
    plan: RunPlan,
    ws: Workspace,
    dataset,
    device,
    *,
    devices: int = 1,
    group=None,
    on_event: Callable[[Any], None] | None = None,
    worker_listener=None,
    thread_tuner: Any = "auto",
) -> Path:
    """Train the planned run; returns its checkpoint. ``group`` is a torchrun group this process
    belongs to (rank 0 alone writes); ``devices`` > 1 spawns that many worker processes.
    ``thread_tuner``: "auto" applies ``perf.auto_tuner`` (the CLI, the demo and ``train_run`` all
    get the same rule), None keeps the thread count as set, or a ``perf.ThreadTuner`` to use."""
    from latentctl import checkpoint, perf
    from latentctl.events import CheckpointEvent
    from latentctl.training import World, train

    thread_tuner = perf.resolve_tuner(thread_tuner, device, group=group, devices=devices)
    main = group is None or group.is_main
    target = plan.target
    resume = checkpoint.load(plan.resume_from, device=device, training=True) if plan.resuming else None

    def make_current() -> None:
        if main and (target / CHECKPOINT_NAME).exists():
            ws.set_current(target)

    def listen(event) -> None:
        if on_event is not None:
            on_event(event)
        if isinstance(event, CheckpointEvent):
            make_current()

    kwargs = dict(run_dir=target, dataset=dataset, model_config=plan.model, train_config=plan.train, resume=resume)
    try:
        if devices > 1:
            from latentctl.distributed import train_parallel

            path = train_parallel(devices, device, listener=worker_listener, **kwargs)
        else:
            world = World() if group is None else World(group.rank, group.size)
            path = train(
                device=device, world=world, on_event=listen if main else None, thread_tuner=thread_tuner, **kwargs
            )
    except LatentctlError:
        make_current()
        raise
    make_current()
    return path


def _merge(pairs: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
    """Each stored config with the user's explicit options applied; a change to any key that alters
    what a step computes is refused, listing every such key at once."""
    merged, diffs = [], []
    for stored, given in pairs:
        new = dataclasses.replace(stored, **given)
        diffs += config_differences(
            {k: v for k, v in to_dict(stored).items() if k not in RESUMABLE_KEYS},
            {k: v for k, v in to_dict(new).items() if k not in RESUMABLE_KEYS},
        )
        merged.append(new)
    if diffs:
        raise ConfigMismatchError(
            f"--resume: these settings differ from the run being resumed: {'; '.join(diffs)}. "
            "Leave them out to keep the run's values, or start a new run"
        )
    return merged
