"""One configuration per process: median seconds per training step (img/s = B/2 / step).

python -m benchmarks.step_speed {plain|latentctl} SIZE BATCH STEPS [fp32|bf16]
"""

import statistics
import sys
import time

import torch


def make_step(impl: str, size: int, batch: int, precision: str):
    if impl == "latentctl":
        from latentctl import perf
        from latentctl.config import ModelConfig, TrainConfig
        from latentctl.train.training import GANTrainer

        perf.use_all_cores()
        perf.tune_allocator()
        cfg = TrainConfig(batch_size=batch, channels_last=True, precision=precision)
        trainer = GANTrainer(ModelConfig(image_size=size), cfg, torch.device("cpu"))
        return lambda real: trainer.step(trainer.prepare_real(real))
    from benchmarks.plain_reference import PlainGAN, prepare_real

    gan = PlainGAN(image_size=size, batch_size=batch)
    return lambda real: gan.step(prepare_real(real))


def main() -> None:
    impl, size, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
    step = make_step(impl, size, batch, precision)
    real = torch.randint(0, 256, (batch // 2, size, size, 3), dtype=torch.uint8)
    step(real)  # warm-up: oneDNN picks and caches its kernels
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(real)
        times.append(time.perf_counter() - start)
    m = statistics.median(times)
    print(
        f"{impl:10s} {precision} {size}px batch {batch}: {m:.2f} s/step, {batch / 2 / m:.2f} img/s (median of {steps})",
        flush=True,
    )


if __name__ == "__main__":
    main()
