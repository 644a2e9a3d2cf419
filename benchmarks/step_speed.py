"""One configuration per process: median seconds per training step (img/s = B/2 / step).

    python -m benchmarks.step_speed {plain|latentctl} SIZE BATCH STEPS [fp32|bf16]
"""
import sys, time, statistics, torch
impl, size, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
if impl == "latentctl":
    from latentctl import perf
    perf.use_all_cores(); perf.tune_allocator()
    from latentctl.config import ModelConfig, TrainConfig
    from latentctl.training import GANTrainer
    t = GANTrainer(ModelConfig(image_size=size), TrainConfig(batch_size=batch, channels_last=True, precision=precision), torch.device("cpu"))
    step = lambda r: t.step(t.prepare_real(r))
else:
    from benchmarks.plain_reference import PlainGAN, prepare_real
    g = PlainGAN(image_size=size, batch_size=batch)
    step = lambda r: g.step(prepare_real(r))
real = torch.randint(0, 256, (batch // 2, size, size, 3), dtype=torch.uint8)
step(real)
ts = []
for _ in range(steps):
    s = time.perf_counter(); step(real); ts.append(time.perf_counter() - s)
m = statistics.median(ts)
print(f"{impl:10s} {precision} {size}px batch {batch}: {m:.2f} s/step, {batch/2/m:.2f} img/s (median of {steps})", flush=True)
