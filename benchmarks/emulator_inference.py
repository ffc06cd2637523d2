"""Emulator inference layouts, timed in one run: plain, channels-last copy, sub-pixel copy.

    python benchmarks/emulator_inference.py --emulator benchmarks/out/calibrate-polynomial-0/emulator

Times the emulator network's forward pass (no noise, no autograd) on batches of 1,024
normalised parameter vectors, ``--images`` in all, best of ``--repeats``, for

- ``plain``: the trained network as saved (PyTorch's default contiguous layout);
- ``channels_last``: a copy in channels-last layout (gangal's inference copy until
  2026-11-23);
- ``subpixel``: :meth:`ConvEmulator.for_inference` (each stride-2 transposed convolution
  as a 3x3 convolution onto the four output phases plus an interleave, channels-last,
  activations in place), and its largest difference from ``plain``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from gangal_core.calibration.emulator import load_emulator


def _channels_last(net):
    class _Copy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = copy.deepcopy(net).to(memory_format=torch.channels_last).eval()

        def forward(self, u):
            c, h, w = self.net.image_shape
            x = self.net.mlp(u).view(-1, self.net.width, self.net.h0, self.net.w0)
            y = self.net.up(x.contiguous(memory_format=torch.channels_last)).contiguous()[..., :h, :w]
            return torch.tanh(y[:, :c]), torch.nn.functional.softplus(y[:, c:]) + 1e-3

    return _Copy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emulator", type=Path, required=True)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    net = load_emulator(args.emulator).network.eval()
    layouts = {"plain": net, "channels_last": _channels_last(net), "subpixel": net.for_inference()}
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(1024, net.n_parameters, generator=gen) * 2 - 1 for _ in range(args.images // 1024)]
    rows = {}
    with torch.inference_mode():
        ref = net(batches[0])
        diff = max(
            (a - b).abs().max().item() for a, b in zip(ref, layouts["subpixel"](batches[0]), strict=True)
        )
        for _ in range(args.repeats):
            for name, f in layouts.items():  # interleaved, so drifts in machine speed hit all alike
                f(batches[0])
                start = time.perf_counter()
                for u in batches:
                    f(u)
                rate = len(batches) * 1024 / (time.perf_counter() - start)
                rows[name] = max(rows.get(name, 0.0), rate)
    for name, rate in rows.items():
        print(f"{name:>14}: {rate:9,.0f} images/s  ({rate / rows['plain']:.2f}x plain)")
    print(f"largest |subpixel - plain| = {diff:.2e}")
    print(json.dumps({"images_per_s": rows, "max_abs_diff": diff, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
