"""Stage-I training throughput: gangal's DCGAN trainer vs a plain hand-written PyTorch loop.

Both train the same networks (built from the same seed) with the same batch size on the
same images.  gangal's side is :class:`gangal_core.chain.DCGANTrainer` fed by the data
source through :class:`~gangal_core.data.ImageBatches` (decoded cache, flips, moving
average of the generator); the plain side is the textbook loop over a tensor already in
memory: shuffle, slice, one discriminator step, one generator step.  Epochs alternate
between the two (after one warm-up epoch each) so drift in the machine's speed hits both.

    python benchmarks/chain_throughput.py --data galaxyzoo:../shared/data/galaxyzoo2-sample \
        --width 32 --rounds 3

Prints one JSON document: images/s per round and the ratio gangal / plain.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gangal_core.chain.networks import DCGANDiscriminator, DCGANGenerator
from gangal_core.chain.trainers import DCGANTrainer
from gangal_core.data.sources import downscale_nearest, open_data_source


def plain_epoch(gen, disc, opt_g, opt_d, images, batch_size, generator, channels_last):
    """The hand-written loop: one epoch over an in-memory tensor in [-1, 1]."""
    order = torch.randperm(len(images), generator=generator)
    n_batches = len(images) // batch_size
    for b in range(n_batches):
        real = images[order[b * batch_size : (b + 1) * batch_size]]
        if channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        z = torch.randn(batch_size, 100, generator=generator)
        fake = gen(z)
        opt_d.zero_grad(set_to_none=True)
        lr, lf = disc(real), disc(fake.detach())
        bce = F.binary_cross_entropy_with_logits
        loss_d = bce(lr, torch.ones_like(lr)) + bce(lf, torch.zeros_like(lf))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        out = disc(fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        loss_g.backward()
        opt_g.step()
    return n_batches * batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plain-format", choices=["channels_last", "contiguous"], default="channels_last")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    source = open_data_source(args.data)
    raw = [np.asarray(source.read(i)) for i in range(len(source))]
    scale = 255.0 if raw[0].dtype == np.uint8 else 1.0
    images = torch.from_numpy(np.stack([downscale_nearest(r, 64) for r in raw]).astype(np.float32) / scale)
    images = images * 2 - 1

    folder = Path(tempfile.mkdtemp())
    trainer = DCGANTrainer(source, width=args.width, batch_size=args.batch_size, folder=folder, epochs=10**6,
                           seed=0, progress=False)  # fmt: skip
    torch.manual_seed(0)
    gen = DCGANGenerator(width=args.width, channels=source.channels)
    disc = DCGANDiscriminator(width=args.width, channels=source.channels)
    channels_last = args.plain_format == "channels_last"
    if channels_last:
        gen.to(memory_format=torch.channels_last)
        disc.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(0)
    per_epoch = len(trainer.batches)

    def gangal_epoch(epoch: int) -> int:
        for it in range(epoch * per_epoch, (epoch + 1) * per_epoch):
            trainer.step(it)
        return per_epoch * args.batch_size

    trainer.sample_every = 10**9  # no sample grids inside the timed epochs
    gangal_epoch(0)  # warm-up: fills the decoded cache
    plain_epoch(gen, disc, opt_g, opt_d, images, args.batch_size, rng, channels_last)
    rows = []
    for r in range(args.rounds):
        t = time.perf_counter()
        n = gangal_epoch(r + 1)
        ours = n / (time.perf_counter() - t)
        t = time.perf_counter()
        n = plain_epoch(gen, disc, opt_g, opt_d, images, args.batch_size, rng, channels_last)
        plain = n / (time.perf_counter() - t)
        rows.append({"round": r + 1, "gangal_images_per_s": round(ours, 1),
                     "plain_images_per_s": round(plain, 1), "ratio": round(ours / plain, 3)})  # fmt: skip
    ours_total = float(np.median([row["gangal_images_per_s"] for row in rows]))
    plain_total = float(np.median([row["plain_images_per_s"] for row in rows]))
    print(json.dumps({
        "data": args.data, "n_images": len(source), "width": args.width, "batch_size": args.batch_size,
        "threads": args.threads, "plain_format": args.plain_format, "rounds": rows,
        "median_gangal_images_per_s": ours_total, "median_plain_images_per_s": plain_total,
        "median_ratio": round(ours_total / plain_total, 3),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
