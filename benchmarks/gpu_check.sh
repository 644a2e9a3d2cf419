#!/usr/bin/env bash
# The checks and figures that need a CUDA GPU, in one run of under 10 minutes on one GPU.
#
#   benchmarks/gpu_check.sh                      # on a GPU machine; report to $OUT/gpu-check.md
#   benchmarks/gpu_check.sh --out report.md      # report elsewhere
#   benchmarks/gpu_check.sh --cpu-smoke          # every part for 1-2 steps on the CPU (no GPU needed)
#
# Parts, each under its own time limit so one that hangs cannot eat the others' time:
#   1. checks   (90 s): bf16 autocast training steps on the GPU; the uint8 dataset kept on the GPU
#                       (and a 15,000-image 128 px set fitting); sampling through generate_batches
#   2. nccl    (120 s): with more than one GPU, `torchrun --nproc-per-node N` training over NCCL
#                       (--cpu-smoke: 2 processes over gloo)
#   3. bench   (300 s): benchmarks.bench at 64 and 128 px, plain vs latentctl, % of bf16 matmul peak
#   4. schedule(150 s): `latentctl train` at 128 px on 2,000 synthetic faces for 2 epochs (62 steps),
#                       then `latentctl sample` from it; the seed's schedule (15,000 images x 100
#                       epochs) extrapolated from the measured steps (a step's time does not depend
#                       on the data set's size: the images are on the GPU either way)
# It makes its own data (latentctl.pictures.synthetic faces) and writes nothing outside a temporary folder
# but the report. Exit status: 0 when every part passed, 1 otherwise (the report says which).
set -uo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
MODE=gpu
REPORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) MODE=smoke ;;
    --out) REPORT="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
OUTDIR="${OUT:-$HERE/benchmarks/out}"
mkdir -p "$OUTDIR"
REPORT="${REPORT:-$OUTDIR/gpu-check.md}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/latentctl-gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export LATENTCTL_HOME="$WORK/home" PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
RESULTS="$WORK/results.jsonl"   # one JSON object per figure or check; the report is built from it
: > "$RESULTS"
T0=$(date +%s)

if [ "$MODE" = smoke ]; then
  DEVICE=cpu; SIZE=32; WIDTH=16; BATCH=16; IMAGES=64; EPOCHS=1; SKIP=0
  BENCH_ARGS="--device cpu --sizes 32 --batch 16 --steps 1 --warmup 1 --sample-steps 1 --no-loader"
  NPROC=2
else
  DEVICE=cuda; SIZE=128; WIDTH=128; BATCH=128; IMAGES=2000; EPOCHS=2; SKIP=10  # 2 x 31 steps
  BENCH_ARGS="--device cuda --sizes 64,128 --steps 20 --warmup 3 --sample-steps 20 --budget 40 --no-loader"
  NPROC=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
  if [ "$NPROC" -lt 1 ]; then echo "gpu_check.sh: no CUDA GPU visible (use --cpu-smoke to check the script on a CPU)" >&2; exit 2; fi
fi

export PY MODE DEVICE SIZE WIDTH BATCH IMAGES EPOCHS SKIP BENCH_ARGS NPROC WORK RESULTS
status=0
part() {  # part NAME SECONDS: run the function NAME with a time limit, record pass/fail and time
  local name="$1" limit="$2"
  local t=$(date +%s)
  echo "== $name (limit ${limit}s)" >&2
  # timeout runs programs, not shell functions: hand the function to a child bash
  if timeout "$limit" bash -c "$(declare -f "$name"); $name" > "$WORK/$name.log" 2>&1; then
    echo "{\"part\": \"$name\", \"ok\": true, \"s\": $(( $(date +%s) - t ))}" >> "$RESULTS"
  else
    local rc=$?
    status=1
    echo "{\"part\": \"$name\", \"ok\": false, \"rc\": $rc, \"s\": $(( $(date +%s) - t ))}" >> "$RESULTS"
    echo "-- $name failed (exit $rc); last lines:" >&2
    tail -n 25 "$WORK/$name.log" >&2
  fi
}

# ---------------------------------------------------------------------------------------------------
# 1. checks
checks() {
  "$PY" - "$DEVICE" "$RESULTS" "$MODE" <<'PYEOF'
import json, sys, time
import numpy as np
import torch
from latentctl.config import ModelConfig, TrainConfig
from latentctl.device import autocast, resolve_precision
from latentctl.space.generate import generate_batches
from latentctl.train.trainers import GANTrainer
from latentctl.train.training import _RealBatches

dev, results, mode = torch.device(sys.argv[1]), sys.argv[2], sys.argv[3]
def record(**kw):
    with open(results, "a") as f:
        f.write(json.dumps(kw) + "\n")

auto = resolve_precision("auto", dev)
record(check="auto precision", value=auto, ok=(auto == "bf16") if dev.type == "cuda" else True)
steps = 2 if mode == "smoke" else 20
trainer = GANTrainer(ModelConfig(image_size=64, width=64), TrainConfig(batch_size=64, precision="bf16"), dev)
with torch.no_grad(), autocast(dev, "bf16"):
    out_dtype = str(trainer.G(torch.randn(2, 100, device=dev)).dtype)
real = torch.randint(0, 256, (32, 64, 64, 3), dtype=torch.uint8)
times = []
for _ in range(steps):
    t = time.perf_counter()
    losses = trainer.step(trainer.prepare_real(real.to(dev))).tolist()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
finite = all(np.isfinite(losses))
record(check="bf16 autocast training steps (64 px, width 64, batch 64)", value=f"{steps} steps, last {times[-1]:.4f} s, losses {['%.3f' % v for v in losses]}, G output {out_dtype}", ok=finite)

small = np.zeros((256, 64, 64, 3), np.uint8)
batches = _RealBatches(small, dev)
kept = batches.on_device is not None
got = batches(np.arange(8))
record(check="dataset kept on the GPU", value=f"on device: {kept}; batch on {got.device}", ok=kept if dev.type == "cuda" else True)
if dev.type == "cuda":
    big = np.zeros((15000, 128, 128, 3), np.uint8)  # the seed's data set at 128 px: 737 MB
    record(check="15,000 images at 128 px kept on the GPU", value=str(_RealBatches(big, dev).on_device is not None), ok=True)
    del big
    torch.cuda.empty_cache()

from latentctl.perf import prepare_for_sampling
G = prepare_for_sampling(trainer.G, dev)
z = np.random.default_rng(0).standard_normal((128, 100)).astype(np.float32)
t = time.perf_counter()
imgs = list(generate_batches(G, z, device=dev, batch_size=64, precision=auto))
n = sum(len(b) for b in imgs)
record(check="sampling path (generate_batches, uint8 out)", value=f"{n} images {imgs[0].shape[1:]} {imgs[0].dtype} in {time.perf_counter() - t:.3f} s", ok=n == 128 and str(imgs[0].dtype) == "uint8")
if dev.type == "cuda":
    record(check="GPU", value=f"{torch.cuda.get_device_name(dev)}, {torch.cuda.device_count()} visible, torch {torch.__version__}, CUDA {torch.version.cuda}", ok=True)
PYEOF
}
part checks 90

# ---------------------------------------------------------------------------------------------------
# data for parts 2 and 4 (synthetic faces; not timed as a part)
"$PY" -c "import sys; from pathlib import Path; from latentctl.pictures.synthetic import make_dataset; make_dataset(Path(sys.argv[1]), n=int(sys.argv[2]), size=int(sys.argv[3]))" \
  "$WORK/faces" "$IMAGES" "$SIZE" || { echo "gpu_check.sh: could not make the synthetic faces" >&2; exit 1; }

# 2. NCCL (or gloo in the smoke run) through torchrun
nccl() {
  "$PY" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" -m latentctl train "$WORK/faces" \
    --image-size 32 --width 16 --latent-dim 8 --batch-size $((8 * NPROC)) --epochs 1 --device "$DEVICE" --name ddp
}
if [ "$NPROC" -gt 1 ]; then
  part nccl 120
else
  echo "{\"check\": \"NCCL\", \"value\": \"skipped: 1 GPU\", \"ok\": true}" >> "$RESULTS"
fi

# 3. the GPU benchmark
bench() {
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of words
  "$PY" -m benchmarks.bench $BENCH_ARGS --json "$WORK/bench.json"
}
part bench 300

# 4. the seed's schedule, extrapolated from measured steps; then sampling from the trained run
schedule() {
  "$PY" -m latentctl train "$WORK/faces" --image-size "$SIZE" --width "$WIDTH" --batch-size "$BATCH" \
    --epochs "$EPOCHS" --device "$DEVICE" --name schedule > "$WORK/schedule.path" || return 1
  "$PY" -m latentctl sample "$(dirname "$(cat "$WORK/schedule.path")")" -n 64 --device "$DEVICE" -o "$WORK/samples" || return 1
  test -f "$WORK/samples/grid.png"
}
part schedule 150

# ---------------------------------------------------------------------------------------------------
# the report
"$PY" - "$RESULTS" "$WORK" "$REPORT" "$MODE" "$SKIP" "$(( $(date +%s) - T0 ))" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
results, work, report, mode, skip, total = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
rows = [json.loads(x) for x in Path(results).read_text().splitlines() if x.strip()]
out = [f"# latentctl GPU check ({'CPU smoke run: figures are NOT GPU figures' if mode == 'smoke' else 'GPU'})", ""]
out += ["| part / check | result | ok |", "|---|---|---|"]
for r in rows:
    if "part" in r:
        out.append(f"| part `{r['part']}` | {r['s']} s" + (f", exit {r['rc']}" if not r["ok"] else "") + f" | {'yes' if r['ok'] else '**NO**'} |")
    else:
        out.append(f"| {r['check']} | {r['value']} | {'yes' if r['ok'] else '**NO**'} |")
bench = work / "bench.json"
if bench.exists():
    b = json.loads(bench.read_text())
    peak = b["peak"]
    out += ["", f"Benchmark on {b['device']}: matmul peak " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peak.items()), "",
            "| kind | size | configuration | precision | s/step | img/s | vs plain | % of its precision's peak |", "|---|---|---|---|---|---|---|---|"]
    for r in b["summary"]:
        p = peak.get("bfloat16" if r.get("precision") == "bf16" else "float32") or peak.get("float32")
        pct = 100 * r["gflops_s"] / p if p and r.get("gflops_s") else None
        out.append(f"| {r['kind']} | {r['size']} px | {r['name']} | {r.get('precision')} | {r['step_s']:.4f} | {r['img_s']:.1f} | "
                   f"{(r['vs_plain'] or 0):.2f}x | {'-' if pct is None else f'{pct:.1f}'} |")
runs = list((work / "home" / "runs").glob("*schedule*"))
if runs and (runs[0] / "metrics.jsonl").exists():
    rec = [json.loads(x) for x in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_sec"] for r in rec[skip:]] or [r["images_per_sec"] for r in rec]
    rate = statistics.median(rates)
    seconds = 15000 * 100 / rate
    out += ["", "| seed's schedule (15,000 images x 100 epochs) | |", "|---|---|",
            f"| measured | {len(rates)} steps after {min(skip, len(rec) - len(rates))} warm-up, median {rate:,.1f} real img/s (`latentctl train`, {runs[0].name}) |",
            f"| extrapolated | {seconds:,.0f} s = {seconds / 3600:.2f} h |"]
out += ["", f"Total {total} s."]
report.write_text("\n".join(out) + "\n")
print("\n".join(out))
PYEOF
exit $status
