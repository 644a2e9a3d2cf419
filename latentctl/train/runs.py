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
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentctl.config import (
    FAMILIES,
    LOSSES,
    RESUMABLE_KEYS,
    TRAINABLE_ARCHS,
    ModelConfig,
    TrainConfig,
    config_differences,
    to_dict,
)
from latentctl.errors import ConfigMismatchError, DataError, LatentctlError, UsageError
from latentctl.files.workspace import CHECKPOINT_NAME, Workspace, slug
from latentctl.train import growing
from latentctl.train.recipes import model_defaults, train_defaults


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


# The user's words that only the data or the machine can settle; everything else in a Request is a
# config field, passed through unchanged (None = not given).
# An imported network's spec and prior come from its file, never from a training request.
MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("network", "latent_prior"))
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("precision", "channels_last"))
CHOICES = {"family": FAMILIES, "arch": TRAINABLE_ARCHS, "loss": LOSSES}


@dataclass
class Request:
    """A training run as the user asked for it, before anything is resolved: the CLI, ``train_run``
    and the demo each build one, and ``resolve`` is the one place that turns it into configs.

    ``device``, ``precision`` and ``channels`` may be ``"auto"``; ``channels_last`` None means "the
    device's default"; ``kimg`` is a budget converted to steps once the batch size is known."""

    data: Path | None = None
    resume: Path | None = None
    run_dir: Path | None = None
    name: str | None = None
    # What a new run's name starts with instead of its data folder's name (the demo: "demo-faces").
    label: str | None = None
    device: str = "auto"
    precision: str = "auto"
    channels: str | int = "auto"
    channels_last: bool | None = None
    kimg: float | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_options(cls, **options: Any) -> Request:
        """A request from flat keyword options (``train_run``'s): every name is checked, so a typo
        is a UsageError naming the closest option instead of a TypeError from a dataclass."""
        own = {f.name for f in dataclasses.fields(cls)} - {"model", "train"}
        fields = {k: options.pop(k) for k in list(options) if k in own}
        if "steps" in options:
            options["max_steps"] = options.pop("steps")
        unknown = sorted(set(options) - set(MODEL_KEYS) - set(TRAIN_KEYS))
        if unknown:
            known = sorted(own | set(MODEL_KEYS) | set(TRAIN_KEYS) | {"steps"})
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown option {unknown[0]!r}{hint}; the options are: {', '.join(known)}")
        model = {k: v for k, v in options.items() if k in MODEL_KEYS}
        train = {k: v for k, v in options.items() if k in TRAIN_KEYS}
        return cls(**fields, model=model, train=train)


def choose(option: str, value: Any, choices: tuple[str, ...]) -> Any:
    """``value`` if it is one of ``choices``, matched case-insensitively (``Lite`` is ``lite``);
    otherwise a UsageError that lists them. None (not given) passes through."""
    if value is None:
        return None
    if isinstance(value, str):
        for c in choices:
            if value.strip().lower() == c:
                return c
    raise UsageError(f"--{option.replace('_', '-')} {value!r} is not one of: {', '.join(choices)}")


def resolve(ws: Workspace, request: Request):
    """(RunPlan, torch.device): the request resolved against the device and the data. The one
    answer to "what run does this ask for": `latentctl train`, ``train_run`` and the demo agree."""
    from latentctl.device import resolve_device, resolve_precision

    dev = resolve_device(request.device)
    model = {k: v for k, v in request.model.items() if v is not None}
    given_train = dict(request.train)  # names settled on copies: the request stays as it was given
    for key, choices in CHOICES.items():
        table = model if key in MODEL_KEYS else given_train
        if key in table:
            table[key] = choose(key, table[key], choices)
    channels = _channels(request.channels, request.data, request.resume)
    if channels is not None:
        model["channels"] = channels
    train = {
        **given_train,
        "precision": resolve_precision(request.precision, dev),
        "channels_last": (dev.type in ("cpu", "cuda")) if request.channels_last is None else request.channels_last,
    }
    result = plan(
        ws,
        data=request.data,
        resume=request.resume,
        run_dir=request.run_dir,
        name=request.name,
        label=request.label,
        model=model,
        train=train,
    )
    if request.kimg is not None:
        if request.train.get("max_steps") is not None:
            raise UsageError("--kimg and --steps are both budgets; give one")
        if not request.kimg > 0:
            raise UsageError(f"--kimg must be positive, got {request.kimg}")
        per_step = result.train.half_batch if result.model.family == "gan" else result.train.batch_size
        result.train = dataclasses.replace(result.train, max_steps=max(1, math.ceil(request.kimg * 1000 / per_step)))
    return result, dev


def _channels(text: str | int, data: Path | None, resume: Path | None) -> int | None:
    """``auto``: a grey model for a folder of grey pictures, else RGB; a resumed run keeps its own."""
    if text == "auto":
        if resume is not None or data is None:
            return None  # a resumed run keeps its own; a missing folder is reported by the plan
        from latentctl.pictures.data import detect_channels

        return detect_channels(data) if Path(data).expanduser().is_dir() else None
    if str(text) not in ("1", "3", "4") or isinstance(text, bool):
        raise UsageError(f"--channels must be auto, 1, 3 or 4, got {text!r}")
    return int(text)


def plan(
    ws: Workspace,
    *,
    data: Path | None = None,
    resume: Path | None = None,
    run_dir: Path | None = None,
    name: str | None = None,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    label: str | None = None,
) -> RunPlan:
    """The configs a run will train with. ``model`` / ``train`` hold the options the user gave
    (``None`` values are "not given")."""
    from latentctl.files import checkpoint

    given_model = {k: v for k, v in (model or {}).items() if v is not None}
    given_train = {k: v for k, v in (train or {}).items() if v is not None}
    if resume is not None:
        if run_dir is not None:
            raise UsageError("--run-dir and --resume both name a run folder; give only --resume")
        ckpt = ws.resolve_checkpoint(resume)
        info = checkpoint.read_header(ckpt)
        if info.model.imported:
            raise UsageError(
                f"{ckpt} is a generator imported from {info.source.get('file', 'another tool')}; it has no "
                "discriminator or training state, so it cannot be trained or resumed here"
            )
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
    growing.check(model_cfg, train_cfg)
    data = Path(data).expanduser()
    if not data.is_dir():
        why = "it is a file" if data.exists() else "it does not exist"
        raise DataError(f"{data} is not a folder of images ({why})")
    family = "" if model_cfg.family == "gan" else model_cfg.family + "-"
    arch_part = "" if model_cfg.arch == "seed" else model_cfg.arch + "-"
    run_name = name or f"{slug(label or data.resolve().name)}-{arch_part}{family}{model_cfg.image_size}px"
    return RunPlan(data, model_cfg, train_cfg, Path(run_dir).expanduser() if run_dir else None, run_name)


def open_data(
    plan: RunPlan, ws: Workspace, *, strict: bool = False, progress: Callable[[int, int], None] | None = None
):
    """Decode (or reuse the cache of) the run's pictures; on resume they must be the same ones."""
    from latentctl.pictures.data import prepare_dataset

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
    """Create the run folder of a new run (or take the resumed one) and list the skipped files.
    First the checks that need the data's size, so that a refused run leaves no folder behind."""
    from latentctl.pictures.data import write_skipped_list

    growing.check(plan.model, plan.train, plan.train.total_steps(len(dataset)))

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
    from latentctl import perf
    from latentctl.files import checkpoint
    from latentctl.train import listeners
    from latentctl.train.events import CheckpointEvent
    from latentctl.train.training import World, train

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

    kwargs = dict(
        run_dir=target,
        dataset=dataset,
        model_config=plan.model,
        train_config=plan.train,
        resume=resume,
        listeners=listeners.standard(),  # what a run folder holds besides its checkpoint
    )
    try:
        if devices > 1:
            from latentctl.train.distributed import train_parallel

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
