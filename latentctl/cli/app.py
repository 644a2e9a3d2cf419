"""The Typer application. Commands live in their own modules and import torch only when they run.

The command list is lazy: each command is named here with its module, panel and one-line help, and
its module is imported and its options built only when it runs, when its own help is asked for, or
when something walks the whole tree (the CLI reference). `latentctl --help` lists the commands from
this table alone, so it imports no command module (and no torch, numpy or matplotlib).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Annotated, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from latentctl import __version__


class Entry(NamedTuple):
    module: str  # where the command lives
    attr: str  # the command's function, or a typer.Typer for a command group
    panel: str  # the top-level help's panel
    summary: str  # its line in the top-level help: the first paragraph of its own help


# Order is the top-level help's order (commands, then groups, as typer lists them). A test checks
# each summary against the command's own help, so the two cannot drift apart.
COMMANDS: dict[str, Entry] = {
    "train": Entry(
        "latentctl.cli.train_cmd",
        "train",
        "Train",
        "Train the seed's GAN (or a VAE or autoencoder) on a folder of images.",
    ),
    "demo": Entry(
        "latentctl.cli.demo_cmd",
        "demo",
        "Train",
        "Train on built-in synthetic faces, then sample, build and apply attribute directions, interpolate, "
        "and write a gallery (index.html) showing each step. No download needed.",
    ),
    "sample": Entry("latentctl.cli.sample_cmd", "sample", "Use a model", "Generate new images from a trained model."),
    "encode": Entry(
        "latentctl.cli.encode_cmd",
        "encode",
        "Use a model",
        "Put real photos into the latent space, to edit them like samples.",
    ),
    "map": Entry(
        "latentctl.cli.encode_cmd",
        "map_latents",
        "Use a model",
        "Draw the latent space: labelled images encoded and plotted, coloured by a label.",
    ),
    "interp": Entry(
        "latentctl.cli.latent_cmds",
        "interp",
        "Use a model",
        "Walk between latents and render each step: strip.png, frame PNGs and the path's latents.",
    ),
    "attr-vector": Entry(
        "latentctl.cli.latent_cmds",
        "attr_vector",
        "Use a model",
        "Build an attribute direction from latents with and without it, and save it to the store.",
    ),
    "apply": Entry(
        "latentctl.cli.latent_cmds",
        "apply",
        "Use a model",
        "Add weighted directions to latents and render the result (rows: latents, columns: strengths).",
    ),
    "render": Entry(
        "latentctl.cli.latent_cmds",
        "render_latents",
        "Use a model",
        "Draw stored latents as they are: a labelled grid and one PNG per latent.",
    ),
    "explore": Entry(
        "latentctl.cli.explore_cmd",
        "explore",
        "Use a model",
        "Browse samples, sort them into two piles, make a direction and steer with sliders, in the browser.",
    ),
    "directions": Entry(
        "latentctl.cli.directions_cmd",
        "directions",
        "Use a model",
        "Find directions without picking samples (SeFa or GANSpace), save them, and render one sweep row per "
        "direction (strengths -3..3) to scan and name.",
    ),
    "steer": Entry(
        "latentctl.cli.steer_cmd",
        "steer",
        "Use a model",
        "Learn a direction from a known image edit (--edit) or from an assessor (--assessor), save it, and "
        "report how well it does on held-out latents.",
    ),
    "score": Entry(
        "latentctl.cli.score_cmd",
        "score",
        "Use a model",
        "Score a model: Fréchet distance, KID and precision/recall of its samples against real images.",
    ),
    "import": Entry(
        "latentctl.cli.import_cmd",
        "import_model",
        "Models",
        "Open a generator another tool wrote, without running any code from its file, and make it a run of the "
        "workspace: sample, interp, attr-vector, apply, directions, explore, encode and score then work on it "
        "as on a model latentctl trained.",
    ),
    "info": Entry(
        "latentctl.cli.sample_cmd",
        "info",
        "Models",
        "Show what a checkpoint holds: model, training state, versions. Reads only the header.",
    ),
    "export": Entry(
        "latentctl.cli.sample_cmd",
        "export",
        "Models",
        "Write a small generator-only checkpoint for sampling and sharing.",
    ),
    "classifier": Entry(
        "latentctl.cli.steer_cmd",
        "classifier_app",
        "Use a model",
        "Train the attribute classifier that `steer --assessor` follows.",
    ),
    "latents": Entry("latentctl.cli.latent_cmds", "latents_app", "Latent store", "Inspect the latent store."),
    "runs": Entry(
        "latentctl.cli.runs_cmd",
        "runs_app",
        "Models",
        "The workspace's training runs: list them, choose the current one, show one.",
    ),
}

MARKUP = "rich"


def build_command(name: str) -> TyperCommand | TyperGroup:
    """The click command ``name`` as typer builds it: its module imported, its options built."""
    entry = COMMANDS[name]
    target = getattr(importlib.import_module(entry.module), entry.attr)
    # A one-entry app with a callback is a group, so typer names the command as we do and builds it
    # exactly as `app.command(...)` / `app.add_typer(...)` on the top-level app would.
    holder = typer.Typer(rich_markup_mode=MARKUP, add_completion=False, pretty_exceptions_enable=False)
    holder.callback()(lambda: None)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, rich_help_panel=entry.panel)
    else:
        holder.command(name, rich_help_panel=entry.panel)(target)
    command = typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]
    _coerce_plain_values_directly(command)
    _reflow_help(command)
    return command


def _reflow_help(command) -> None:
    """Docstrings are wrapped at the source's width, and typer keeps their line breaks, so an
    80-column terminal broke sentences mid-line. Each prose paragraph becomes one line that the
    terminal wraps; indented lines (examples) keep their own lines. Subcommands likewise."""
    import inspect

    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(
            p if any(line.startswith((" ", "\t")) for line in p.splitlines()) else " ".join(p.split())
            for p in paragraphs
        )
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


class LazyCommands(MutableMapping):
    """A group's ``commands``: names are known up front, each command is built on first access."""

    def __init__(self, built: MutableMapping) -> None:
        self.built = dict(built)
        self.names = [*COMMANDS, *(n for n in self.built if n not in COMMANDS)]

    def is_built(self, name: str) -> bool:
        return name in self.built

    def __getitem__(self, name: str):
        if name not in self.built:
            if name not in COMMANDS:
                raise KeyError(name)
            self.built[name] = build_command(name)
        return self.built[name]

    def __setitem__(self, name: str, command) -> None:
        self.built[name] = command
        if name not in self.names:
            self.names.append(name)

    def __delitem__(self, name: str) -> None:
        self.names.remove(name)
        self.built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.names))

    def __len__(self) -> int:
        return len(self.names)


class LazyGroup(TyperGroup):
    """The top-level group: lists its commands from ``COMMANDS`` and builds one only when used.

    Listing (the top-level help, completing a command name) shows each unbuilt command by its
    name, panel and summary; resolving a command to run it or show its own help builds it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)
        self.listing = False

    def get_command(self, ctx, cmd_name: str):
        if self.listing and cmd_name in COMMANDS and not self.commands.is_built(cmd_name):
            entry = COMMANDS[cmd_name]
            return TyperCommand(name=cmd_name, help=entry.summary, rich_help_panel=entry.panel, rich_markup_mode=MARKUP)
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        for param in self.get_params(ctx):  # --version, the completion flags, --help
            _coerce_plainly(param)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # the names, in order, without building any command

    def format_help(self, ctx, formatter) -> None:
        # Drawn without typer.rich_utils, whose import alone is a quarter of --help's time.
        from latentctl.cli.listing import print_listing

        self.listing = True  # get_command answers unbuilt commands from the table
        try:
            commands = [self.get_command(ctx, name) for name in self.list_commands(ctx)]
        finally:
            self.listing = False
        rows = [
            (c.name, getattr(c, "rich_help_panel", None), (c.short_help or c.help or "").split("\n\n")[0])
            for c in commands
            if c is not None and not c.hidden
        ]
        print_listing(self, ctx, rows)

    def shell_complete(self, ctx, incomplete: str):
        self.listing = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self.listing = False


# --- parameter values without pydantic ------------------------------------------------------------
# typer 0.2x validates each parameter through a pydantic TypeAdapter that it builds before looking at
# the value, even for an option that was not given; importing pydantic for that costs 0.15-0.2 s on
# a slow core, more than `latentctl info` or `runs` spend on their work. The plain cases (an absent
# value; a str; a path, checked by typer's own path rules; a whole or decimal number inside the
# option's range) are answered directly with the result typer's validator gives them (a test compares
# the two); everything else (an out-of-range or malformed number, a choice, a list) still goes to
# typer's validator, so error messages are typer's. A typer without these internals, or with ones of
# another shape, is left to do all of it itself: this is a speed-up, never a requirement.

_DEFER = object()
_WHOLE = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _plain_value(value, param, ctx):
    """``value`` as typer's validator would return it, or _DEFER where that takes typer itself."""
    try:
        desc = param.type_descriptor
        info, kind = desc.parameter_info, desc.annotation
        special = desc.file_annotation is not None or info.parser is not None
        if special or getattr(info, "click_type", None) is not None or param.multiple or param.nargs != 1:
            return _DEFER
        bounds, path_type = (info.min, info.max), info.path_type
    except AttributeError:  # another typer's internals: let it validate everything itself
        return _DEFER
    if kind is str and isinstance(value, str):
        return value
    if kind is Path and isinstance(value, (str, Path)) and path_type is None:
        try:
            from typer._param_types import coerce_cli_path
        except ImportError:
            return _DEFER
        # typer's own checks (exists, file_okay, readable, resolve_path, ...) on the Path it would make
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    if kind in (int, float):
        if type(value) is kind:
            number = value
        elif isinstance(value, str) and (_WHOLE if kind is int else _DECIMAL).fullmatch(value):
            number = kind(value)
        else:
            return _DEFER
        if (bounds[0] is not None and number < bounds[0]) or (bounds[1] is not None and number > bounds[1]):
            return _DEFER  # typer says what the range is
        return number
    return _DEFER


class _PlainFirst:
    """A parameter's runtime coercion that answers the plain cases itself and builds typer's
    validator only for the rest."""

    def __init__(self, build) -> None:
        self.build = build

    def coerce(self, value, param, ctx):
        if value is None:  # as typer's RuntimeParam.coerce: an absent value stays absent
            return () if (param.multiple or param.nargs == -1) else None
        plain = _plain_value(value, param, ctx)
        if plain is not _DEFER:
            return plain
        return self.build().coerce(value, param=param, ctx=ctx)

    def __getattr__(self, name: str):
        return getattr(self.build(), name)


def _coerce_plainly(param) -> None:
    build = getattr(param, "get_runtime_param", None)
    if callable(build) and hasattr(param, "type_descriptor") and not isinstance(build, functools.partial):
        param.get_runtime_param = functools.partial(_PlainFirst, build)


def _coerce_plain_values_directly(command) -> None:
    """Every parameter of ``command`` and of its subcommands, and the --help option click makes for
    each when it parses, coerces plain values directly."""
    for param in command.params:
        _coerce_plainly(param)
    make_help_option = command.get_help_option

    def get_help_option(ctx):
        option = make_help_option(ctx)
        if option is not None:
            _coerce_plainly(option)
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _coerce_plain_values_directly(sub)


app = typer.Typer(
    name="latentctl",
    cls=LazyGroup,
    help=(
        "Train an image generative model on your own pictures, then explore what it learned: "
        "sample, interpolate, and build and apply attribute directions from latents you saved."
    ),
    rich_markup_mode=MARKUP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"latentctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Train an image generative model on your own pictures, then explore its latent space."""


def main() -> None:
    # OpenMP reads its wait policy once, when torch loads it: set latentctl's choice (unless the
    # user set their own) before any command imports torch. Why: docs/performance.md, "Busy machine".
    from latentctl import perf

    perf.openmp_env()
    app()
