"""The one training base: a toy Trainer saves the documented state and resumes bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gangal_core.training import Interrupted, Trainer


class _Regression(Trainer):
    """A least-squares line fitted to noisy points drawn from the run's stream, with dropout."""

    def __init__(self, **options) -> None:
        super().__init__(iterations=20, **options)
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
        self.random = torch.Generator().manual_seed(2)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.models["line"], self.optimisers["line"] = self.net, optimiser
        self.schedulers["line"] = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-2, total_steps=20)
        self.generators["points"] = self.random
        self.seen = 0

    def step(self, iteration: int) -> dict[str, float]:
        x = torch.rand(16, 1, generator=self.random)
        y = 3 * x + 0.1 * torch.randn(16, 1, generator=self.random)
        loss = (self.net(x) - y).square().mean()
        self.update("line", loss)
        self.seen += 16
        return {"mse": loss.item()}

    def extra_state(self) -> dict:
        return {"seen": self.seen}

    def load_extra_state(self, extra: dict) -> None:
        self.seen = extra["seen"]

    def result(self) -> torch.nn.Module:
        return self.net


def test_the_state_has_the_documented_parts() -> None:
    state = _Regression(history_every=1).state()
    assert list(state) == ["models", "optimisers", "schedulers", "generators", "torch", "history", "extra"]
    assert "cuda" not in state  # a CPU run keeps no CUDA state
    assert set(state["generators"]) == {"points"} and state["extra"] == {"seen": 0}


def test_an_interrupted_run_resumes_bit_for_bit(tmp_path: Path, interrupt_at) -> None:
    straight = _Regression(history_every=1)
    whole = straight.train()
    checkpoint = tmp_path / "checkpoint.safetensors"
    interrupt_at(13)
    with pytest.raises(Interrupted, match="iteration 13 of 20"):
        _Regression(checkpoint=checkpoint, checkpoint_every=5, history_every=1).train()
    interrupt_at(None)
    torch.manual_seed(99)  # the checkpoint, not the process, decides the dropout stream
    resumed = _Regression(checkpoint=checkpoint, resume=True, history_every=1)
    net = resumed.train()
    for a, b in zip(net.state_dict().values(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.history.values == straight.history.values and resumed.seen == straight.seen == 320
