"""How long latentctl's commands take to start, and where a model command's time goes.

    python -m benchmarks.startup                    # 5 rounds, a quiet machine
    python -m benchmarks.startup --rounds 11 --busy # with one CPU-bound neighbour process running
    python -m benchmarks.startup --baseline /tmp/old # and another checkout, interleaved (before/after)
    python -m benchmarks.startup --json startup.json

It trains its own tiny run first (32 px, width 16, one epoch on 64 generated pictures, in a temporary
HOME's ~/.latentctl), so it needs no data. Then:

1. Whole processes, as a user waits (interpreter, imports, the work, exit): ``latentctl --help``,
   ``info RUN``, ``runs``, ``latents list``, ``sample --seeds 1 RUN``, and for scale ``python -c
   "import torch"`` and ``python -c "import latentctl.cli.app"``. The commands run interleaved, one
   of each per round, so a neighbour that comes and goes slows them all alike; figures are medians.
2. ``sample``'s imports: ``python -X importtime`` of the whole command, each module's own time
   charged to the third-party package that imported it (torch's own imports of numpy or sympy are
   torch's), latentctl's modules to latentctl, and the interpreter's start-up (site) apart.
3. ``sample``'s time inside the command: a driver process imports what the command imports, then
   runs the CLI in-process with the library's steps wrapped in timers (header read, tensor-set
   check on the meta device, tensor read, building networks, loading weights, preparing for
   sampling, the forward, PNG writes, the latents file); what is left is typer, the workspace and
   the error edge. Each step's time excludes the timed steps inside it.

``--busy`` starts one neighbour (``python -c "while True: pass"``) for the whole measurement, as
another user's job on a 2-core machine would be. This parent process never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent

# Top-level packages charged together in the import breakdown.
GROUPS = {
    "typer": "typer/click/rich",
    "click": "typer/click/rich",
    "rich": "typer/click/rich",
    "markdown_it": "typer/click/rich",
    "mdurl": "typer/click/rich",
    "pygments": "typer/click/rich",
    "shellingham": "typer/click/rich",
    "annotated_doc": "typer/click/rich",
    "torch": "torch (and what it imports)",
    "numpy": "numpy",
    "PIL": "PIL",
    "matplotlib": "matplotlib",
    "scipy": "scipy",
    "safetensors": "safetensors",
    "latentctl": "latentctl",
    "site": "interpreter start-up (site)",
}

# The driver for part 3: runs in its own process, prints one JSON line of step -> seconds.
DRIVER = r"""
import json, sys, time
t0 = time.perf_counter()
from latentctl import perf
perf.openmp_env()
import torch, numpy, PIL.Image, PIL.PngImagePlugin, safetensors.torch
import importlib
import latentctl.models as models


def _module(new, old):
    # A checkout from before the sub-packages (latentctl/files, space, pictures) has the flat names.
    # Asked by folder, not by trying the import: an editable install of another checkout would
    # answer for sub-packages this one lacks.
    import os
    import latentctl
    sub = new.split(".")[1]
    return importlib.import_module(new if os.path.isdir(os.path.join(latentctl.__path__[0], sub)) else old)


ck = _module("latentctl.files.checkpoint", "latentctl.checkpoint")
session = _module("latentctl.space.session", "latentctl.session")
generate = _module("latentctl.space.generate", "latentctl.generate")
grid = _module("latentctl.pictures.grid", "latentctl.grid")
from latentctl.cli.app import app
t_imports = time.perf_counter() - t0

times, stack = {}, []

def timed(label, func):
    def wrapper(*args, **kwargs):
        name = label(stack) if callable(label) else label
        stack.append([name, 0.0])
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            _, inner = stack.pop()
            times[name] = times.get(name, 0.0) + spent - inner
            if stack:
                stack[-1][1] += spent
    return wrapper

def timed_batches(func):
    def wrapper(*args, **kwargs):
        batches = func(*args, **kwargs)
        first = True
        while True:
            name = "first forward" if first else "later forwards"
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                spent = time.perf_counter() - start
                times[name] = times.get(name, 0.0) + spent
                if stack:
                    stack[-1][1] += spent
            first = False
            yield batch
    return wrapper

ck.read_header = timed("read header", ck.read_header)
ck._check_tensor_set = timed("check tensor set", ck._check_tensor_set)
safetensors.torch.load_file = timed("read tensors", safetensors.torch.load_file)
in_check = lambda s: "build networks on meta (check)" if s and s[-1][0] == "check tensor set" else "build networks"
models.build_models = timed(in_check, models.build_models)
models.build_generator = timed(in_check, models.build_generator)
torch.nn.Module.load_state_dict = timed("load weights", torch.nn.Module.load_state_dict)
perf.prepare_for_sampling = timed("prepare for sampling", perf.prepare_for_sampling)
perf.cpu_speedups = timed("cpu speedups", perf.cpu_speedups)
generate.generate_batches = timed_batches(generate.generate_batches)
grid.make_grid = timed("compose grid", grid.make_grid)
grid.save_png = timed("PNG write", grid.save_png)
session.save_latents = timed("latents file", session.save_latents)

start = time.perf_counter()
try:
    app(sys.argv[1:])
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
total = time.perf_counter() - start
times["rest (typer, workspace, error edge)"] = total - sum(times.values())
print(json.dumps({"imports": t_imports, "command": total, "steps": times}), file=sys.__stderr__)
"""


def _env(root: Path, home: Path) -> dict[str, str]:
    # The workspace is the default one (~/.latentctl) in a temporary HOME, as for a new user: no
    # LATENTCTL_HOME, so commands run without a --workspace value to parse.
    env = dict(os.environ, HOME=str(home), COLUMNS="100", NO_COLOR="1")
    env.pop("LATENTCTL_HOME", None)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("OMP_NUM_THREADS", None)
    # A user's interpreter keeps the compiled .pyc files (pip writes them at install, an editable
    # install on first run); with this set, every run would compile latentctl's sources again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _latentctl() -> list[str]:
    script = Path(sys.executable).parent / "latentctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "latentctl"]


def _timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def make_run(tmp: Path, env: dict[str, str]) -> Path:
    """A tiny trained run (32 px, width 16, one epoch) and one latent store entry."""
    import numpy as np
    from PIL import Image

    folder = tmp / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for i in range(64):  # a warm background with a blue disc near the centre
        img = np.empty((32, 32, 3))
        img[...] = np.array([200, 70, 40]) + rng.integers(-20, 20, 3)
        cx, cy = 16 + rng.normal(0, 2, 2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 64] = [30, 40, 150]
        Image.fromarray(np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)).save(
            folder / f"img_{i:04d}.png"
        )
    cli = _latentctl()
    flags = ["--image-size", "32", "--width", "16", "--epochs", "1", "--batch-size", "16"]
    subprocess.run([*cli, "train", str(folder), *flags], env=env, check=True, capture_output=True)
    run = next((Path(env["HOME"]) / ".latentctl" / "runs").iterdir())
    subprocess.run(
        [*cli, "sample", str(run), "--seeds", "0-3", "--save", "bench", "--out", str(tmp / "first")],
        env=env,
        check=True,
        capture_output=True,
    )
    return run


def commands(run: Path, tmp: Path) -> dict[str, list[str]]:
    cli = _latentctl()
    return {
        "latentctl --help": [*cli, "--help"],
        "latentctl info RUN": [*cli, "info", str(run)],
        "latentctl runs": [*cli, "runs"],
        "latentctl latents list": [*cli, "latents", "list"],
        "latentctl sample --seeds 1 RUN": [
            *cli,
            "sample",
            "--seeds",
            "1",
            str(run),
            "--out",
            str(tmp / "out"),
            "--force",
        ],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        'python -c "import latentctl.cli.app"': [sys.executable, "-c", "import latentctl.cli.app"],
    }


def whole_processes(cmds: dict[str, tuple[list[str], dict[str, str]]], rounds: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for args, env in cmds.values():  # one unmeasured pass: the page cache, .pyc files
        _timed(args, env)
    for _ in range(rounds):
        for name, (args, env) in cmds.items():
            times[name].append(_timed(args, env))
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs": t}
        for name, t in times.items()
    }


def _top_group(chain: list[str]) -> str:
    """The group a module's own import time is charged to: the first non-latentctl module up its
    import chain, by top-level package; stdlib modules imported by latentctl itself are 'stdlib'."""
    for name in chain:
        top = name.split(".", 1)[0].lstrip("_")
        if top == "latentctl":
            continue
        if name.startswith("__editable__") or top == "site":
            return GROUPS["site"]
        return GROUPS.get(top, "other (stdlib and small packages)")
    return GROUPS["latentctl"]


def import_breakdown(args: list[str], env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median over ``rounds`` of each group's summed own import time (seconds)."""
    line = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    per_round: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *_as_python(args)], env=env, capture_output=True, text=True, check=True
        )
        entries = [
            (int(m.group(1)) / 1e6, len(m.group(3)), m.group(4)) for m in map(line.match, proc.stderr.splitlines()) if m
        ]
        # importtime prints a module after the modules it imported, indented deeper: read backwards,
        # the open (shallower) entries above a line are its importers, outermost first.
        totals: dict[str, float] = defaultdict(float)
        importers: list[tuple[int, str]] = []
        for self_s, depth, name in reversed(entries):
            while importers and importers[-1][0] >= depth:
                importers.pop()
            totals[_top_group([n for _, n in importers] + [name])] += self_s
            importers.append((depth, name))
        for group, s in totals.items():
            per_round[group].append(s)
    return {g: statistics.median(v + [0.0] * (rounds - len(v))) for g, v in per_round.items()}


def _as_python(args: list[str]) -> list[str]:
    """``args`` as arguments to the interpreter (the latentctl script becomes ``-m latentctl``)."""
    if args[0] == sys.executable:
        return args[1:]
    return ["-m", "latentctl", *args[1:]]


def inside_sample(args: list[str], env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median over ``rounds`` of each step's time in a driver running `sample` in-process."""
    per_round: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER, *_as_python(args)[2:]], env=env, capture_output=True, text=True
        )
        if proc.returncode:
            sys.exit(f"the in-process driver failed ({env.get('PYTHONPATH')}):\n{proc.stderr[-3000:]}")
        found = json.loads(proc.stderr.strip().splitlines()[-1])
        per_round["imports (torch, numpy, PIL, safetensors, latentctl, typer)"].append(found["imports"])
        for step, s in found["steps"].items():
            per_round[step].append(s)
        per_round["the command, in all"].append(found["command"])
    return {step: statistics.median(v + [0.0] * (rounds - len(v))) for step, v in per_round.items()}


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="timed runs of each command (medians reported) [5]")
    p.add_argument("--busy", action="store_true", help="run one CPU-bound neighbour process during the timings")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose latentctl is timed [this one]")
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also time another checkout (e.g. a `git worktree` of the commit before), interleaved with this one",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)

    result: dict = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "root": str(args.root),
        "rounds": args.rounds,
        "busy": args.busy,
        "load_before": _load(),
    }
    print(f"# {result['cpu']}, {result['cores']} cores, Python {result['python']}; {args.root}")
    print(f"# load average {result['load_before']}; {args.rounds} rounds; neighbour: {'busy' if args.busy else 'none'}")
    with tempfile.TemporaryDirectory(prefix="latentctl-startup-") as tmp_name:
        tmp = Path(tmp_name)
        # `python -c` and `-m` put the working directory first on sys.path: run where no checkout is,
        # so PYTHONPATH decides which latentctl is timed.
        here = Path.cwd()
        os.chdir(tmp)
        env = _env(args.root.resolve(), tmp / "home")
        base_env = _env(args.baseline.resolve(), tmp / "home") if args.baseline else env
        run = make_run(tmp, env)
        cmds = commands(run, tmp)
        neighbour = (
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None  # noqa: S603
        )
        try:
            timed = {name: (argv, env) for name, argv in cmds.items()}
            if args.baseline:  # the same commands from the baseline checkout, interleaved round by round
                timed.update({f"{name} [baseline]": (argv, base_env) for name, argv in cmds.items()})
            result["processes"] = whole_processes(timed, args.rounds)
            sample = cmds["latentctl sample --seeds 1 RUN"]
            result["sample_imports"] = import_breakdown(sample, env, args.rounds)
            result["sample_steps"] = inside_sample(sample, env, args.rounds)
            if args.baseline:
                result["baseline_sample_imports"] = import_breakdown(sample, base_env, args.rounds)
                result["baseline_sample_steps"] = inside_sample(sample, base_env, args.rounds)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
        os.chdir(here)
    result["load_after"] = _load()

    procs = result["processes"]
    base = " baseline" if args.baseline else ""
    print(f"\nwhole processes (wall s)               median     min     max{base}")
    for name in cmds:
        t = procs[name]
        b = f"   {procs[name + ' [baseline]']['median_s']:6.3f}" if args.baseline else ""
        print(f"  {name:37s} {t['median_s']:6.3f}  {t['min_s']:6.3f}  {t['max_s']:6.3f}{b}")
    for key, title in (("sample_imports", ""), ("baseline_sample_imports", " [baseline]")):
        if key not in result:
            continue
        print(f"\nsample --seeds 1{title}: import time by package (median s, own time of each module)")
        for group, s in sorted(result[key].items(), key=lambda kv: -kv[1]):
            print(f"  {group:40s} {s:6.3f}")
        print(f"  {'all imports':40s} {sum(result[key].values()):6.3f}")
    for key, title in (("sample_steps", ""), ("baseline_sample_steps", " [baseline]")):
        if key not in result:
            continue
        print(f"\nsample --seeds 1{title}: inside one process (median s)")
        for step, s in result[key].items():
            print(f"  {step:58s} {s:6.3f}")
    print(f"\n# load average after: {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
