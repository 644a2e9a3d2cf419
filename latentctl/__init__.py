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

__version__ = "0.1.0"

_MODEL_KEYS = ("family", "arch", "image_size", "latent_dim", "width", "channels")


def open_model(
    model: str | Path | None = None,
    *,
    device: str = "auto",
    workspace: str | Path | None = None,
    precision: str = "fp32",
    ema: bool = True,
    allow_other_model: bool = False,
    warn=None,
):
    """A loaded model (``session.ModelSession``): a run folder, checkpoint or run name, or the
    workspace's current run when ``model`` is None. ``.sample(seeds)``, ``.images(z)``,
    ``.latents("glasses@0,2")``, ``.entry(z)`` and ``.store`` (the latent store)."""
    from latentctl.session import open_model as _open

    session = _open(
        None if model is None else Path(model),
        device,
        None if workspace is None else Path(workspace),
        precision,
        warn=warn,
        ema=ema,
    )
    session.allow_other_model = allow_other_model
    return session


def train_run(
    data: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    workspace: str | Path | None = None,
    device: str = "auto",
    name: str | None = None,
    run_dir: str | Path | None = None,
    on_event=None,
    strict: bool = False,
    **options: Any,
) -> Path:
    """Train a new run on the pictures in ``data`` (or resume ``resume``) exactly as `latentctl
    train` does; returns the run folder. ``options`` are the config fields (ModelConfig's family,
    arch, image_size, latent_dim, width, channels; TrainConfig's epochs, batch_size, lr, ...), with
    the same defaults and recipes as the CLI. ``on_event`` receives ``latentctl.events`` objects."""
    from latentctl import perf, runs
    from latentctl.device import resolve_device, resolve_precision
    from latentctl.workspace import Workspace

    ws = Workspace.resolve(None if workspace is None else Path(workspace))
    dev = resolve_device(device)
    model = {k: options.pop(k) for k in _MODEL_KEYS if k in options}
    if "precision" in options:
        options["precision"] = resolve_precision(options["precision"], dev)
    plan = runs.plan(
        ws,
        data=None if data is None else Path(data),
        resume=None if resume is None else Path(resume),
        run_dir=None if run_dir is None else Path(run_dir),
        name=name,
        model=model,
        train=options,
    )
    perf.cpu_speedups(dev)
    dataset = runs.open_data(plan, ws, strict=strict)
    target = runs.start(plan, ws, dataset)
    runs.execute(plan, ws, dataset, dev, on_event=on_event)
    return target


__all__ = ["__version__", "open_model", "train_run"]
