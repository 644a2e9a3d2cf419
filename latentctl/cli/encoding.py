"""Encoding pictures into a model's latent space with its progress shown: which encoder a model
uses (its own, the fast GAN encoder trained on first use, or projection) and the steps it takes.
Shared by `encode`, `map` and `attr-vector --images`; no command module imports another."""

from __future__ import annotations

from pathlib import Path

from latentctl.cli.common import note, warn


def encoding_label(session, images: str, gan_encoder, *, steps: int, restarts: int, refine: int) -> str:
    """What encoding ``images`` ("3 images") is about to do, in the words of the options that set it."""
    if session.loaded.encoder is not None:
        return f"encoding {images} with the model's encoder"
    if gan_encoder is not None:
        return f"encoding {images} with the GAN encoder" + (f" + {refine} L-BFGS steps" if refine else "")
    return f"projecting {images} ({steps} steps, {restarts} starts each)"


def gan_encoder_for(session, *, train_new: bool = False, steps: int | None = None):
    """The run's fast GAN encoder, trained here (its progress shown) when there is none yet."""
    from latentctl.cli.progress import step
    from latentctl.space import gan_encoder as GE

    path = GE.encoder_path(session.path, session.info.model.space)
    n = steps or GE.GanEncoderConfig.steps
    expected = train_new or not path.exists()
    if expected:
        note(f"training a GAN encoder on the generator's own samples; it is stored as {path} and reused next time")
    # lazy when a stored encoder is expected to do: only a stale one (another generator's) trains
    with step(
        f"training the GAN encoder ({n} step{'s' if n != 1 else ''} of 64 samples)", n, lazy=not expected
    ) as advance:
        net, path, trained = GE.ensure(
            session.loaded,
            session.path,
            session.device,
            train_new=train_new,
            steps=steps,
            on_progress=lambda done, total, loss: advance(done, total, f"latent MSE {loss:.3f}"),
        )
    note(("trained and saved" if trained else "using") + f" the GAN encoder {path}")
    return net


def encode_labelled(
    session,
    images: Path,
    column: str,
    labels: Path | None,
    pattern: str | None,
    max_images: int,
    *,
    fast: bool = True,
    refine: int = 30,
    encoder_steps: int | None = None,
    others: bool = False,
):
    """Labelled images into the latent space with progress shown: an AE/VAE's encoder, or for a
    GAN the fast encoder (trained on first use) + ``refine`` L-BFGS steps, else projection.
    (latents, values), and with ``others`` the other label columns as a third item."""
    from latentctl.cli.progress import step
    from latentctl.space.encode import labelled_latents_with_others

    net = None
    if session.loaded.encoder is None:
        if fast:
            net = gan_encoder_for(session, steps=encoder_steps)
        else:
            warn("this GAN has no encoder: finding latents by optimisation will be slow (leave out --no-fast-encoder)")
    # labelled_latents projects with its defaults: 300 steps, 4 starts
    label = encoding_label(session, "labelled images", net, steps=300, restarts=4, refine=refine)
    with step(label) as advance:
        z, values, rest = labelled_latents_with_others(
            session,
            images,
            column,
            labels,
            pattern,
            max_images,
            gan_encoder=net,
            refine_steps=refine if net is not None else 0,
            on_note=note,
            on_progress=advance,
        )
    return (z, values, rest) if others else (z, values)
