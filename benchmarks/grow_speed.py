"""What a step costs at each phase of `train --grow-steps`, beside a full-size step, in one process.

    python -m benchmarks.grow_speed                  # the lite recipe, 32 px, width 32, its batch
    python -m benchmarks.grow_speed --size 64 --width 32 --steps 40

For every level the schedule passes through (16 px alone, each fade, each size alone, and the full
size, which a run without growing trains at throughout) it times ``--steps`` lite-recipe steps
after two warm-up steps and prints the median seconds a step and its share of a full-size step.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=None, help="[default: the lite recipe's]")
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()

    import torch

    from benchmarks.machine import cpu_model
    from latentctl import perf
    from latentctl.config import ModelConfig, TrainConfig
    from latentctl.train import growing
    from latentctl.train.recipes import model_defaults, train_defaults
    from latentctl.train.trainers import make_trainer

    perf.use_all_cores()
    model = ModelConfig(**{**model_defaults("lite"), "arch": "lite", "image_size": args.size, "width": args.width})
    defaults = train_defaults("lite", model)
    batch = args.batch or defaults["batch_size"]
    # one phase of 1,000 steps: steps_done picks the level a step trains at
    cfg = TrainConfig(**{**defaults, "batch_size": batch, "channels_last": True, "grow_steps": 1000})
    torch.manual_seed(0)
    trainer = make_trainer(model, cfg, torch.device("cpu"))
    real = trainer.prepare_real(torch.randint(0, 256, (batch // 2, args.size, args.size, 3), dtype=torch.uint8))
    print(
        f"CPU: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}; lite, {args.size} px, "
        f"width {args.width}, batch {batch}, median of {args.steps} steps"
    )
    rows = []
    end = growing.full_size_from(1000, model.stages)
    for start in [*range(0, end, 1000), end]:
        times = []
        for i in range(args.steps + 2):
            trainer.steps_done = start + (500 if (start // 1000) % 2 else 0)  # a fade's middle
            level = trainer.level
            t = time.perf_counter()
            trainer.step(real)
            if i >= 2:
                times.append(time.perf_counter() - t)
        rows.append((growing.describe(level), statistics.median(times)))
    full = rows[-1][1]
    for what, t in rows:
        print(f"  {what:<22} {t * 1000:7.1f} ms a step  {t / full:5.2f}x a full-size step")


if __name__ == "__main__":
    main()
