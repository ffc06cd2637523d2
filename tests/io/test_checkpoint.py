"""Checkpoints are safetensors + JSON: a full training state round-trips; nothing is unpickled."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from gangal_core.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _assert_same(a, b, where="state"):
    if isinstance(a, dict):  # an OrderedDict state_dict comes back a plain dict, in the same order
        assert isinstance(b, dict), where
    else:
        assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def test_a_training_state_round_trips_exactly(tmp_path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10)
    net(torch.randn(2, 1, 5, 5)).sum().backward()
    opt.step()
    sched.step()
    gen = torch.Generator().manual_seed(3)
    state = {
        "net": net.state_dict(),
        "opt": opt.state_dict(),  # per-parameter state keyed by int, betas a tuple
        "sched": sched.state_dict(),
        "gen": gen.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.default_rng(1).bit_generator.state,  # dict holding Python ints > 2**63
        "py_random": (3, tuple(range(5)), None),
        "bf16": torch.randn(3, dtype=torch.bfloat16),
        "empty": torch.zeros(0, 4),
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "floats": [float("inf"), -float("inf"), float("nan"), 0.5],
        "history": {"every": 10, "values": {"D": [0.1, 0.2]}},
        "tricky keys": {"__tensor__": 1, 2: "two", (1, 2): "pair"},
    }
    save_checkpoint(tmp_path / "c.safetensors", state, metadata={"iteration": 7})
    loaded, meta = load_checkpoint(tmp_path / "c.safetensors")
    assert meta == {"iteration": 7}
    _assert_same(state, loaded)
    opt2 = torch.optim.Adam(net.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["opt"])  # what resume does; must accept the restored tree
    gen2 = torch.Generator()
    gen2.set_state(loaded["gen"])
    assert torch.equal(torch.rand(4, generator=gen2), torch.rand(4, generator=gen))


def test_objects_that_are_not_data_are_refused_when_saving(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"state\.f: a function cannot be checkpointed"):
        save_checkpoint(tmp_path / "c.safetensors", {"f": lambda: 0})
    assert not (tmp_path / "c.safetensors").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left behind either


class _Exploit:
    def __reduce__(self):
        return (os.mkdir, (str(_Exploit.target),))


def test_a_pickle_is_refused_and_never_run(tmp_path) -> None:
    _Exploit.target = tmp_path / "pwned"
    bad = tmp_path / "checkpoint.safetensors"
    bad.write_bytes(pickle.dumps({"state": _Exploit()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint.safetensors cannot be read.*pickle"):
        load_checkpoint(bad)
    torch.save({"state": {"w": torch.ones(2)}}, bad)  # torch's zip format
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(bad)
    assert not _Exploit.target.exists()


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -10, -1])
def test_truncated_and_foreign_files_are_named(tmp_path, cut) -> None:
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"w": torch.arange(100.0), "step": 3})
    data = good.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"checkpoint .*bad.safetensors cannot be read"):
        load_checkpoint(bad)


def test_a_safetensors_file_that_is_not_a_checkpoint_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    other = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(2)}, other)
    with pytest.raises(CheckpointError, match=r"format None, expected 'gangal-checkpoint/1'"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match=r"missing.safetensors cannot be read"):
        load_checkpoint(tmp_path / "missing.safetensors")
