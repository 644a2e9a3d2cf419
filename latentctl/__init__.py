"""latentctl: train an image generative model on your pictures and explore its latent space.

The Python API (docs/python-api.md) is what the CLI itself is built on; importing this package
imports no torch, so every function below loads what it needs when called::

    import latentctl

    run = latentctl.train_run("photos/", image_size=32, arch="lite", epochs=30)
    model = latentctl.open_model(run)
    images = model.sample([16, 37, 83])          # (3, 32, 32, 3) uint8, as `sample --seeds 16,37,83`
    model.store.save("glasses", model.entry(model.latents("seeds:16,37,83").z, seeds=[16, 37, 83]))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentctl import _moved
from latentctl._version import __version__

_moved.install()  # the module paths before the sub-packages, for one release (latentctl/_moved.py)


def open_model(
    model: str | Path | None = None,
    *,
    device: str = "auto",
    workspace: str | Path | None = None,
    precision: str = "auto",
    ema: bool = True,
    allow_other_model: bool = False,
    warn=None,
    space: str | None = None,
    noise: str | None = None,
):
    """A loaded model (``session.ModelSession``): a run folder, checkpoint or run name, or the
    workspace's current run when ``model`` is None. ``.sample(seeds)``, ``.images(z)``,
    ``.latents("glasses@0,2")``, ``.entry(z)`` and ``.store`` (the latent store). ``precision``
    ``auto`` renders as `latentctl sample` does (bf16 where the device computes it natively).
    ``space`` and ``noise`` are `--space` (z, w or w+ for a StyleGAN) and `--noise`."""
    from latentctl.space.session import open_model as _open

    session = _open(
        None if model is None else Path(model),
        device,
        None if workspace is None else Path(workspace),
        precision,
        warn=warn,
        ema=ema,
        space=space,
        noise=noise,
    )
    session.allow_other_model = allow_other_model
    return session


def train_run(
    data: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    workspace: str | Path | None = None,
    on_event=None,
    strict: bool = False,
    **options: Any,
) -> Path:
    """Train a new run on the pictures in ``data`` (or resume ``resume``) exactly as `latentctl
    train` does; returns the run folder. ``options`` are the CLI's options by their Python names
    (``image_size``, ``arch``, ``width``, ``epochs``, ``batch_size``, ``lr``, ``steps``, ``kimg``,
    ``device``, ``precision``, ``channels``, ``channels_last``, ``name``, ``run_dir``, ...), with the same
    defaults and the same ``auto`` rules: both build a ``runs.Request`` and ``runs.resolve`` settles
    it. An unknown option is a UsageError. ``on_event`` receives ``latentctl.train.events`` objects."""
    from latentctl import perf
    from latentctl.train import runs

    plan, dev, ws = _plan(data, resume, workspace, options)
    perf.cpu_speedups(dev)
    dataset = runs.open_data(plan, ws, strict=strict)
    target = runs.start(plan, ws, dataset)
    runs.execute(plan, ws, dataset, dev, on_event=on_event)
    return target


def plan_run(
    data: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    workspace: str | Path | None = None,
    **options: Any,
):
    """The run ``train_run`` with these arguments would train, resolved but not started
    (``runs.RunPlan``: ``.model`` and ``.train`` are the configs): what `latentctl train --dry-run`
    prints. Reads nothing but the folder's first pictures (for ``channels="auto"``)."""
    return _plan(data, resume, workspace, options)[0]


def _plan(data, resume, workspace, options: dict[str, Any]):
    from latentctl.files.workspace import Workspace
    from latentctl.train import runs

    if options.get("run_dir") is not None:
        options["run_dir"] = Path(options["run_dir"])
    request = runs.Request.from_options(
        data=None if data is None else Path(data), resume=None if resume is None else Path(resume), **options
    )
    ws = Workspace.resolve(None if workspace is None else Path(workspace))
    plan, dev = runs.resolve(ws, request)
    return plan, dev, ws


__all__ = ["__version__", "open_model", "plan_run", "train_run"]
