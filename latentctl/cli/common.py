"""What every command shares: the error edge, the consoles, and common options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from latentctl.errors import LatentctlError, StoreError, TrainingInterrupted, UsageError
from latentctl.files.fsutil import describe_os_error
from latentctl.files.workspace import tidy_on_failure

# Progress, warnings and errors go to stderr; stdout carries only results (paths), so scripts can
# capture them.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line
out_console = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(func: F) -> F:
    """The one edge between the library and the user: library errors become a one-line message and
    their exit code, OS errors (full disk, read-only folder, ...) a line naming the path and the
    cause (exit 1), running out of memory a line saying so (exit 1), Ctrl-C exit 130. Nothing else
    ever reaches the user as a traceback only when it is a bug of ours. The folders a failed command
    created and left empty are removed."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _own_pixel_limit()
        try:
            with tidy_on_failure():  # a failed command leaves no empty output or run folder
                return func(*args, **kwargs)
        except TrainingInterrupted as err:
            # Said once, as what it is (a requested stop, not an error); `train` says it itself,
            # with the resume command, and marks it reported.
            if not getattr(err, "reported", False):
                err_console.print(escape(str(err)), markup=True, highlight=False)
            raise typer.Exit(err.exit_code) from None
        except LatentctlError as err:
            fail(str(err), err.exit_code)
        except BrokenPipeError:
            # stdout closed early (`latentctl sample | head -1`): nothing left to say to anyone.
            _silence_stdout()
            raise typer.Exit(1) from None
        except OSError as err:
            fail(describe_os_error(err), 1)
        except MemoryError:
            fail("out of memory: ask for fewer images at once (a smaller -n, --batch-size or --image-size)", 1)
        except KeyboardInterrupt:
            err_console.print("Interrupted.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]Error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code) from None


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _own_pixel_limit() -> None:
    # latentctl checks every image's pixel count itself, from its header, and says so in its own
    # words (images.MAX_IMAGE_PIXELS); Pillow's process-wide limit would print a raw warning with a
    # source path for pictures between its limit and ours.
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]Warning:[/] {escape(message)}", markup=True, highlight=False)


def note(message: str) -> None:
    err_console.print(message, markup=False, highlight=False)


def result(text: str) -> None:
    """A result line on stdout (paths users may want to capture)."""
    print(text, file=sys.stdout, flush=True)


PANEL_WORKSPACE = "Workspace"
PANEL_OUTPUT = "Output"
PANEL_DEVICE = "Device and speed"

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        envvar="LATENTCTL_HOME",
        metavar="DIR",
        help="Folder for runs, the latent store, the image cache and outputs \\[default: ~/.latentctl].",
        rich_help_panel=PANEL_WORKSPACE,
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="auto|cpu|cuda|mps",
        help="Where to compute; auto picks CUDA, then MPS, then CPU.",
        rich_help_panel=PANEL_DEVICE,
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        metavar="auto|fp32|bf16",
        help="bf16 autocast: about 2x faster where the hardware computes in bf16; auto picks it on CUDA GPUs and on CPUs with native bf16 (AVX-512 BF16 or AMX), fp32 elsewhere.",
        rich_help_panel=PANEL_DEVICE,
    ),
]
ModelArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="MODEL",
        help="Run folder or .safetensors checkpoint \\[default: the current run].",
        show_default=False,
    ),
]
P_LABELS = "Labelled images"
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        metavar="CSV",
        help="labels.csv: a file column and numeric label columns \\[default: DIR/labels.csv if present, else UTKFace-style names].",
        rich_help_panel=P_LABELS,
        show_default=False,
    ),
]
PatternOpt = Annotated[
    str | None,
    typer.Option(
        "--name-pattern",
        metavar="REGEX",
        help="Read labels from file names with this regex's named groups \\[default: UTKFace's age_gender_race_].",
        rich_help_panel=P_LABELS,
        show_default=False,
    ),
]
MaxImagesOpt = Annotated[
    int,
    typer.Option(
        min=1, help="Encode at most this many labelled images (a reproducible subset).", rich_help_panel=P_LABELS
    ),
]


PANEL_SPACE = "Latent space"
SpaceOpt = Annotated[
    str | None,
    typer.Option(
        "--space",
        metavar="z|w|w+",
        help="A StyleGAN's latent space: w (its mapping's output, where edits are most linear), w+ (one w per layer: projections fit closer, edits can pick layers) or z (the seed's own draw) \\[default: w; z for every other model].",
        rich_help_panel=PANEL_SPACE,
        show_default=False,
    ),
]
NoiseOpt = Annotated[
    str | None,
    typer.Option(
        "--noise",
        metavar="const|random|none",
        help="A StyleGAN2's noise inputs: const (NVIDIA's default: a seed always draws the same picture), random (fresh noise every image) or none \\[default: const].",
        rich_help_panel=PANEL_SPACE,
        show_default=False,
    ),
]


EmaOpt = Annotated[
    bool,
    typer.Option(
        "--ema/--no-ema",
        help="Use the generator's moving average when the run kept one (--no-ema: the raw weights, to compare).",
        rich_help_panel=PANEL_DEVICE,
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Replace existing files or store entries.", rich_help_panel=PANEL_OUTPUT),
]


def peak_memory() -> str:
    """This process's peak memory, for the summary line of commands that can use a lot of it."""
    try:
        import resource
    except ImportError:  # Windows
        return "peak memory unknown"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    text = f"peak memory {peak / 2**30:.2f} GiB"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.max_memory_allocated():
        text += f", GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    return text


# Shared by latent_cmds and encode_cmd (kept here so neither imports the other).
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        metavar="MODEL",
        help="Run folder or .safetensors checkpoint \\[default: the current run].",
        show_default=False,
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Output folder \\[default: a new numbered folder in the workspace's outputs/].",
        rich_help_panel=PANEL_OUTPUT,
        show_default=False,
    ),
]


# --- renamed flags ---------------------------------------------------------------------------------
# A flag name meant two things across commands (--images a folder or on/off, --steps frames or
# optimisation steps, --model a family or a checkpoint). The on/off and frame-count spellings were
# renamed; each old spelling stays for one release as a hidden alias, so no script breaks.


def renamed(value: Any, old_value: Any, *, new: str, old: str, default: Any) -> Any:
    """The value of a renamed flag: ``old_value`` (the hidden old spelling) when given, with a note.

    Both spellings with different values are refused; the new one can only be told apart from its
    default when it differs from it (``--no-pngs --images`` is refused, ``--pngs --no-images`` is
    read as ``--no-images``)."""
    if old_value is None:
        return value
    if value != default and value != old_value:
        raise UsageError(f"{old} is the old spelling of {new}: give {new} only")
    warn(f"{old} is now {new}; the old spelling still works in this release and will then be removed")
    return old_value


PngsOpt = Annotated[
    bool,
    typer.Option(
        "--pngs/--no-pngs", help="Write one PNG per image (named by seed when known).", rich_help_panel=PANEL_OUTPUT
    ),
]
OldImagesOpt = Annotated[bool | None, typer.Option("--images/--no-images", hidden=True)]
OldLabelsOpt = Annotated[bool | None, typer.Option("--labels/--no-labels", hidden=True)]
PNGS = dict(new="--pngs/--no-pngs", old="--images/--no-images", default=True)
CAPTIONS = dict(new="--captions/--no-captions", old="--labels/--no-labels", default=True)


# --- shared by the commands of issue 15 (pictures, runs by name, completion) ---------------------


def _workspace_from(ctx: Any) -> Any:
    """The workspace a command line being completed points at (its --workspace if typed so far)."""
    from latentctl.files.workspace import Workspace

    given = None
    try:
        given = (ctx.params or {}).get("workspace")
    except AttributeError:
        pass
    try:
        return Workspace.resolve(Path(given) if given else None)
    except Exception:  # completion must never fail loudly
        return Workspace(Path.home() / ".latentctl")


def complete_runs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for a MODEL/RUN argument: the workspace's run folder names (commands take
    them by name); a path being typed is left to the shell."""
    if "/" in incomplete or incomplete.startswith((".", "~")):
        return []
    from latentctl.files.runlist import run_names

    return run_names(_workspace_from(ctx), incomplete)


def complete_store_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for a LATENTS argument: latent store entry names, and the seeds: form."""
    if "/" in incomplete or incomplete.startswith((".", "~")):
        return []
    from latentctl.space.store_index import entry_names  # not the store: it imports numpy, and a shell waits

    try:
        names = entry_names(_workspace_from(ctx).store)
    except Exception:  # a damaged store must not break the user's shell
        names = []
    return [n for n in [*names, "seeds:"] if n.startswith(incomplete)]


TileSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--tile-size",
        metavar="PX",
        help="Enlarge each grid tile to about PX pixels (a whole factor, crisp pixels; 0: the model's size) \\[default: 128].",
        rich_help_panel=PANEL_OUTPUT,
        show_default=False,
    ),
]
AllowOtherOpt = Annotated[
    bool,
    typer.Option(
        "--allow-other-model",
        help="Use latents or directions made by a different model (they rarely mean the same there; a warning instead of an error).",
    ),
]
# ModelArg with completion of run names; commands take a run by name, number or unique prefix.
RunModelArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="MODEL",
        help="Run (name, number or prefix, see 'latentctl runs'), run folder or .safetensors checkpoint \\[default: the current run].",
        show_default=False,
        autocompletion=complete_runs,
    ),
]


# --- store names and seed lists, checked before any work ------------------------------------------

MAX_SHEET_SEEDS = 64  # latents a contact sheet or sweep image shows per direction


def seeds_option(text: str) -> list[int]:
    from latentctl.seeds import parse_seeds

    try:
        return parse_seeds(text)
    except UsageError:
        raise UsageError(f"--seeds {text!r}: give seeds such as 0,1,2 or 0-2") from None


def refuse_existing(store, names: list[str], force: bool) -> None:
    """Check every entry name before any is written, so a refused run leaves the store as it was."""
    taken = [n for n in names if store.exists(n)]
    if taken and not force:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise UsageError(
            f"the store already has '{taken[0]}'{more}; pass --force to replace, or choose another --save NAME"
        )


def check_save(save: str | None, workspace: Path | None, force: bool) -> None:
    """Refuse a --save name that is unusable or taken before any work, so nothing renders in vain.

    The store still refuses to overwrite at save time; this only moves the likely failure first.
    """
    if save is None:
        return
    from latentctl.files.workspace import Workspace
    from latentctl.space.store import LatentStore

    path = LatentStore(Workspace.resolve(workspace).store).path_for(save)  # checks the name
    if path.exists() and not force:
        raise StoreError(f"{path} already exists; pass --force to replace it")
