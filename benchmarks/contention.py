"""Training and sampling speed on a busy machine: alone, and beside 1 and 2 CPU-bound processes.

    python -m benchmarks.contention                       # about 4-6 minutes on 2 cores
    python -m benchmarks.contention --loads 0,2 --rounds 4 --only "passive,1 thread"

What it measures (issue 17, "fast on a busy laptop too"): the seed's model at 32 px, width 32;
training steps at batch 64 (32 real images per step), sampling batches of 64 images, and
`encode`'s projection (``encode.project`` on 32 images x 4 restarts, 5 steps a call). Every
configuration runs in its own subprocess (OpenMP reads OMP_WAIT_POLICY / GOMP_SPINCOUNT /
OMP_NUM_THREADS once, when torch loads), and they take turns round by round in a rotating order,
so a busy spell of the shared machine hits all of them alike. "vs 1 thread" is the median of the
per-round ratios to the one-thread configuration measured in the same round under the same load.

While one configuration is measured every other worker is stopped (SIGSTOP): an idle worker
whose OpenMP threads spin (OMP_WAIT_POLICY=ACTIVE spins forever between regions) would otherwise
be one more competing process for the others.

The competing processes are Python busy loops this benchmark starts for each load level and
stops after it; each also ends by itself after --max-seconds, so none can outlive a killed run.
This parent process never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench import _machine, _Worker  # noqa: E402

SIZE, WIDTH, BATCH = 32, 32, 64
WAIT_VARS = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMP_PROC_BIND"]

# (name, impl, levers, env). The latentctl rows are the trainer and sampler `train` and `sample`
# run (channels-last, allocator tuned, auto precision); only the OpenMP environment differs.
CONFIGS = [
    ("latentctl, 1 thread", "latentctl", ["cl", "alloc"], {"OMP_NUM_THREADS": "1"}),
    (
        "latentctl, 2 threads, OMP_WAIT_POLICY=PASSIVE (sample's default)",
        "latentctl",
        ["cl", "alloc"],
        {"OMP_WAIT_POLICY": "PASSIVE"},
    ),
    ("latentctl, 2 threads, libgomp default (before issue 17)", "latentctl", ["cl", "alloc"], {}),
    ("latentctl, 2 threads, OMP_WAIT_POLICY=ACTIVE", "latentctl", ["cl", "alloc"], {"OMP_WAIT_POLICY": "ACTIVE"}),
    ("latentctl, 2 threads, GOMP_SPINCOUNT=10000", "latentctl", ["cl", "alloc"], {"GOMP_SPINCOUNT": "10000"}),
    ("plain reference, 2 threads, libgomp default", "plain", [], {}),
    (
        "latentctl + perf.ThreadTuner, PASSIVE (train's and encode's default)",
        "latentctl",
        ["cl", "alloc", "tuner"],
        {"OMP_WAIT_POLICY": "PASSIVE"},
    ),
    (
        "latentctl + perf.ThreadTuner, GOMP_SPINCOUNT=10000",
        "latentctl",
        ["cl", "alloc", "tuner"],
        {"GOMP_SPINCOUNT": "10000"},
    ),
]
SAMPLE_LEVERS = {"latentctl": ["sampleprep", "alloc"], "plain": []}


def _kind_levers(kind: str, impl: str, levers: list[str]) -> list[str]:
    """A configuration's levers for one kind: training takes them all; sampling and encode keep
    the tuner (and their own preparation), which the training-only levers do not concern."""
    tuner = [lv for lv in levers if lv.startswith("tuner=")]
    if kind == "train":
        return levers
    return (SAMPLE_LEVERS[impl] if kind == "sample" else ["alloc"]) + tuner


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _start_hogs(n: int, max_seconds: float) -> list[subprocess.Popen]:
    code = f"import time\nend = time.monotonic() + {max_seconds}\nwhile time.monotonic() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def _stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for h in hogs:
        h.terminate()
    for h in hogs:
        h.wait()


def _signal(worker: _Worker, sig: int) -> None:
    try:
        os.kill(worker.proc.pid, sig)
    except ProcessLookupError:
        pass


def _measure(worker: _Worker, steps: int) -> float:
    """Seconds per step over ``steps`` steps of the worker's only configuration."""
    total = 0.0
    for _ in range(steps):
        total += worker.ask("STEP", op="step", cfg=0, measured=True)
    return total / steps


def run(args) -> dict:
    keys = [k.strip().lower() for k in (args.only or "").split(",") if k.strip()]
    configs = [c for c in CONFIGS if not keys or c is CONFIGS[0] or any(k in c[0].lower() for k in keys)]
    loads = [int(x) for x in args.loads.split(",")]
    kinds = [k for k in ("train", "sample", "encode") if k not in args.skip]
    machine = _machine()
    print(
        f"machine: {machine.get('cpu', '?')}, {machine.get('cpus')} CPUs, SIMD {'/'.join(machine.get('simd', []))}; "
        f"python {machine['python']}; load average before: {_load_average()}",
        flush=True,
    )
    results: dict = {"machine": machine, "loads": loads, "tables": {}}
    for kind in kinds:
        workers = []
        for name, impl, levers, env in configs:
            if kind == "encode" and impl == "plain":
                continue  # the plain reference has no projection
            # "tuner" becomes tuner=SECONDS: the re-probe interval (120 s, the default, or --tuner-interval)
            levers = [f"tuner={args.tuner_interval:g}" if lv == "tuner" else lv for lv in levers]
            spec = {
                "name": name,
                "kind": kind,
                "impl": impl,
                "size": SIZE,
                "width": WIDTH,
                "batch": BATCH,
                "levers": _kind_levers(kind, impl, levers),
                "env": env,
                "unset": WAIT_VARS,
                "device": "cpu",
                "count_flops": False,
            }
            workers.append(_Worker([spec]))
            _signal(workers[-1], signal.SIGSTOP)
        steps = {"train": args.train_steps, "sample": args.sample_batches, "encode": args.encode_calls}[kind]
        names = [w.specs[0]["name"] for w in workers]
        table = results["tables"][kind] = {}
        for load in loads:
            hogs = _start_hogs(load, args.max_seconds)
            time.sleep(0.5)  # let them get scheduled
            before = _load_average()
            per = [[] for _ in workers]
            for w in workers:  # warm-up under this load: first steps allocate and pick kernels
                _signal(w, signal.SIGCONT)
                _measure(w, 1)
                _signal(w, signal.SIGSTOP)
            for r in range(args.rounds):
                order = list(range(r % len(workers), len(workers))) + list(range(r % len(workers)))
                for j in order:
                    _signal(workers[j], signal.SIGCONT)
                    per[j].append(_measure(workers[j], steps))
                    _signal(workers[j], signal.SIGSTOP)
                print(
                    f"  {kind}, {load} competing: round {r + 1}: " + ", ".join(f"{p[-1]:.3f}" for p in per) + " s/step",
                    file=sys.stderr,
                    flush=True,
                )
            _stop_hogs(hogs)
            rows = []
            for name, times in zip(names, per):
                ratios = [one / t for one, t in zip(per[0], times)]
                rows.append(
                    {
                        "name": name,
                        "s_per_step": statistics.median(times),
                        "times": times,
                        "vs_one_thread": statistics.median(ratios),
                        "ratio_range": [min(ratios), max(ratios)],
                    }
                )
            table[load] = {"rows": rows, "load_average_at_start": before, "load_average_at_end": _load_average()}
        for w in workers:
            _signal(w, signal.SIGCONT)
            w.close([0])
    return results


def _print(results: dict, args) -> None:
    from benchmarks.bench import PROJECT_IMAGES, PROJECT_STEPS

    unit = {
        "train": (BATCH // 2, "real img/s", "TRAINING", args.train_steps, "steps"),
        "sample": (BATCH, "img/s", "SAMPLING", args.sample_batches, "batches"),
        "encode": (PROJECT_IMAGES * PROJECT_STEPS, "image-steps/s", "ENCODE (projection)", args.encode_calls, "calls"),
    }
    for kind, table in results["tables"].items():
        per_img, what, title, n, of = unit[kind]
        print(
            f"\n{title} {SIZE} px, width {WIDTH}, batch {BATCH if kind != 'encode' else PROJECT_IMAGES}"
            f" ({what}); {args.rounds} interleaved rounds of {n} {of} per load"
        )
        loads = list(table)
        wide = max(len(r["name"]) for r in table[loads[0]]["rows"]) + 1
        head = f"{'configuration':<{wide}}" + "".join(f" {f'{ld} competing':>22}" for ld in loads)
        print(head)
        print("-" * len(head))
        for i, row in enumerate(table[loads[0]]["rows"]):
            cells = []
            for ld in loads:
                r = table[ld]["rows"][i]
                cells.append(
                    f"{per_img / r['s_per_step']:>9.1f} {r['vs_one_thread']:>5.2f}x "
                    f"({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})"
                )
            print(f"{row['name']:<{wide}}" + "".join(f" {c:>22}" for c in cells))
        print(
            "load average (1, 5, 15 min) at the start of each load level: "
            + "; ".join(f"{ld} competing: {table[ld]['load_average_at_start']}" for ld in loads)
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.contention", description=__doc__.split("\n\n")[0])
    p.add_argument("--loads", default="0,1,2", help="numbers of competing busy processes, comma-separated [0,1,2]")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per load level [5]")
    p.add_argument("--train-steps", type=int, default=3, help="training steps per configuration per round [3]")
    p.add_argument("--sample-batches", type=int, default=10, help="sampling batches per configuration per round [10]")
    p.add_argument(
        "--only", default=None, help="only configurations whose name contains one of these (1 thread always runs)"
    )
    p.add_argument(
        "--encode-calls", type=int, default=4, help="projection calls (5 steps each) per configuration per round [4]"
    )
    p.add_argument(
        "--tuner-interval",
        type=float,
        default=120.0,
        help="the ThreadTuner rows re-probe after this many seconds of steps [120, the default of train]",
    )
    p.add_argument("--skip", default="", help="'train', 'sample' or 'encode' (comma-separated) to leave out")
    p.add_argument(
        "--max-seconds", type=float, default=600, help="competing processes end by themselves after this [600]"
    )
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = run(args)
    _print(results, args)
    print(
        f"\ncommand: python -m benchmarks.contention {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip()
        + f"; total {time.perf_counter() - t0:.0f} s; load average after: {_load_average()}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
