"""How fast latentctl's data path delivers images: first-time decoding, and batches from the cache.

    python -m benchmarks.loader_speed --size 128 --images 2000 [--json out.json]

Writes ``--images`` synthetic PNG faces to a temporary folder, then measures:

- decode: ``prepare_dataset`` on the folder with an empty cache (Pillow decode + resize, threaded
  over all cores, then the uint8 cache file written), images/s;
- cached: a second ``prepare_dataset`` (finds the cache), then training-sized batches drawn the way
  ``train`` draws them (a random permutation, rows gathered from the memory map, converted to
  floats in [-1, 1] on the device), real images/s.

Compare with the training rate from ``python -m benchmarks.bench``: the loader keeps up when its
cached rate is many times the training rate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def measure(size: int, images: int, batch: int = 64, device: str = "auto") -> dict:
    import numpy as np
    import torch

    from latentctl import perf
    from latentctl.config import ModelConfig, TrainConfig
    from latentctl.device import resolve_device
    from latentctl.pictures.data import prepare_dataset
    from latentctl.pictures.synthetic import make_dataset
    from latentctl.train.training import GANTrainer, _RealBatches, epoch_order

    perf.use_all_cores()
    dev = resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp) / "faces", images, size, seed=0)
        cache = Path(tmp) / "cache"
        t = time.perf_counter()
        prepare_dataset(root, size, cache)
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        ds = prepare_dataset(root, size, cache)
        open_s = time.perf_counter() - t
        assert ds.from_cache
        # only prepare_real is used: a tiny model keeps construction cheap
        trainer = GANTrainer(
            ModelConfig(image_size=size, width=8), TrainConfig(batch_size=2 * batch, channels_last=True), dev
        )
        draw = _RealBatches(ds.images, dev)
        order = epoch_order(0, 1, len(ds))
        n_batches = len(ds) // batch
        t = time.perf_counter()
        for i in range(n_batches):
            x = trainer.prepare_real(draw(order[i * batch : (i + 1) * batch]))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        cached_s = time.perf_counter() - t
        assert x.shape == (batch, 3, size, size) and float(x.min()) >= -1 and np.isfinite(float(x.sum()))
    return {
        "size": size,
        "images": images,
        "batch": batch,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "decode_img_s": images / decode_s,
        "cache_open_s": open_s,
        "cached_img_s": n_batches * batch / cached_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loader_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64, help="real images per batch (the seed: 64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args(argv)
    r = measure(args.size, args.images, args.batch, args.device)
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"{args.size} px, {args.images} images, {r['threads']} threads: first-time decode {r['decode_img_s']:.0f} img/s; "
            f"cache opened in {r['cache_open_s']:.2f} s; batches of {args.batch} from the cache "
            f"{r['cached_img_s']:.0f} img/s on {r['device']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
