"""pasl.train.loop / run / checkpoint / distributed: steps, accumulation, exact resume, DDP, official files.

The step tests use the tiny stand-in networks (pasl.train.tiny): the official AEG takes tens of seconds per
step on a CPU. The official networks are used where only their files matter (checkpoint layout, strict loading).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pasl.aeg_files import load_aeg
from pasl.errors import PASLError
from pasl.train.__main__ import main
from pasl.train.checkpoint import checkpoint_path, init_from, latest_step
from pasl.train.config import load_config
from pasl.train.data import PairsDataset, read_pairs
from pasl.train.distributed import World
from pasl.train.logs import read_log
from pasl.train.loop import Trainer, rng_state, seed_everything, set_rng_state
from pasl.train.nets import EMA_NAMES, NET_NAMES, build_nets
from pasl.train.run import train
from test_train_data import write_training_set

REPO = Path(__file__).resolve().parents[1]
CPU = World(rank=0, local_rank=0, size=1, device=torch.device("cpu"))


def tiny_trainer(config_path: Path, **changes) -> Trainer:
    config = dataclasses.replace(load_config(config_path), **changes)
    seed_everything(config.seed)
    nets, ema = build_nets("tiny")
    trainer = Trainer(nets, ema, config, CPU)
    trainer.seed()
    return trainer


def fixed_batch(folder: Path, indices: list[int]) -> dict[str, torch.Tensor]:
    dataset = PairsDataset(read_pairs(folder / "pairs.txt"), folder, cache_dir=folder / "cache")
    items = [dataset[i] for i in indices]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def states(folder: Path, step: int) -> dict[str, dict]:
    return {part: torch.load(checkpoint_path(folder, step, part), weights_only=True) for part in ("nets", "nets_ema", "optims")}


def flat_tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    if torch.is_tensor(obj):
        return {prefix: obj}
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items() for k, v in flat_tensors(value, f"{prefix}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, value in enumerate(obj) for k, v in flat_tensors(value, f"{prefix}/{i}").items()}
    return {}


def test_losses_are_finite_and_fall_on_a_fixed_batch(tmp_path):
    config = write_training_set(tmp_path)
    trainer = tiny_trainer(config)
    batch = fixed_batch(tmp_path, [0, 1])
    history = [trainer.train_step([batch]) for _ in range(6)]
    assert set(history[0]) == {"d/total", "d/real", "d/fake", "d/r1", "g/total", "g/adv", "g/sty", "g/l2", "g/vgg", "g/id"}
    assert all(math.isfinite(v) for losses in history for v in losses.values())
    assert history[-1]["g/l2"] < 0.7 * history[0]["g/l2"]
    assert history[-1]["g/total"] < history[0]["g/total"]
    assert trainer.step == 6 and trainer.samples_seen == 12


def test_bf16_autocast_step_is_finite_and_close_to_fp32(tmp_path):
    config = write_training_set(tmp_path)
    batch = fixed_batch(tmp_path, [0, 1])
    full = tiny_trainer(config).train_step([batch])
    half = tiny_trainer(config, precision="bf16").train_step([batch])
    assert all(math.isfinite(v) for v in half.values())
    assert half["g/l2"] == pytest.approx(full["g/l2"], rel=0.05) and half["d/real"] == pytest.approx(full["d/real"], rel=0.05)


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(PASLError, match="fp16, which needs a CUDA device"):
        tiny_trainer(write_training_set(tmp_path, cache=False), precision="fp16")


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    config = write_training_set(tmp_path)
    whole = tiny_trainer(config, batch_size=2)
    split = tiny_trainer(config, batch_size=1, grad_accum=2)
    for step in range(2):
        indices = [2 * step, 2 * step + 1]
        whole.train_step([fixed_batch(tmp_path, indices)])
        split.train_step([fixed_batch(tmp_path, [i]) for i in indices])
    for name in NET_NAMES:
        for (key, a), b in zip(whole.nets[name].state_dict().items(), split.nets[name].state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=2e-6, msg=f"{name}.{key}")


def test_resume_reproduces_the_next_step_exactly(tmp_path):
    config = write_training_set(tmp_path, total_steps=3, save_every=2, randcrop_prob=0.5, batch_size=1)
    straight = train(load_config(config), CPU)
    assert straight.step == 3 and latest_step(tmp_path / "out") == 3
    resumed_from = tmp_path / "resume"
    resumed_from.mkdir()
    for part in ("nets", "nets_ema", "optims", "state"):
        shutil.copy(checkpoint_path(tmp_path / "out", 2, part), resumed_from)
    again = train(dataclasses.replace(load_config(config), output_dir=str(tmp_path / "again")), CPU, resume=resumed_from)
    assert again.step == 3
    want, got = states(tmp_path / "out", 3), states(tmp_path / "again", 3)
    for part in want:
        a, b = flat_tensors(want[part]), flat_tensors(got[part])
        assert a.keys() == b.keys()
        different = [key for key in a if not torch.equal(a[key], b[key])]
        assert different == [], part
    assert straight.last_losses == again.last_losses
    log = read_log(tmp_path / "out" / "train_log.jsonl")
    assert [entry["step"] for entry in log] == [1, 2, 3] and all(math.isfinite(entry["g/total"]) for entry in log)


def test_random_states_survive_the_state_file(tmp_path):
    seed_everything(3)
    saved = rng_state(torch.device("cpu"))
    torch.save(saved, tmp_path / "s.ckpt")
    expected = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    seed_everything(99)
    set_rng_state(torch.load(tmp_path / "s.ckpt", weights_only=True), torch.device("cpu"))
    got = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


def torchrun(config: Path, cwd: Path, processes: int = 2) -> None:
    """``python -m pasl.train --config CONFIG`` under ``torchrun --standalone`` (gloo on the CPU), one thread each."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               "-m", "pasl.train", "--config", str(config)]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_train_like_one_on_the_combined_batch(tmp_path):
    """torchrun, 2 processes x batch 1 (gloo), against 1 process x batch 2; then the 2-process checkpoint resumes in 1."""
    config = write_training_set(tmp_path, batch_size=1, output_dir="ddp", randcrop_prob=0.5)
    torchrun(config, tmp_path)
    single = train(dataclasses.replace(load_config(config), batch_size=2, output_dir=str(tmp_path / "one")), CPU)
    assert single.step == 2
    want, got = states(tmp_path / "one", 2), states(tmp_path / "ddp", 2)
    for part in ("nets", "nets_ema"):
        for name, state in want[part].items():
            for key, value in state.items():
                torch.testing.assert_close(got[part][name][key], value, rtol=0, atol=1e-6, msg=f"{part} {name}.{key}")
    assert torch.load(checkpoint_path(tmp_path / "ddp", 2, "state"), weights_only=True)["world_size"] == 2
    resumed = train(dataclasses.replace(load_config(config), batch_size=2, total_steps=3), CPU, resume=tmp_path / "ddp")
    assert resumed.step == 3 and all(math.isfinite(v) for v in resumed.last_losses.values())


def test_official_checkpoints_load_strictly(tmp_path, nets_ema_path):
    """Fine-tune start from a released {step}_nets_ema.ckpt; the files written load in pasl.aeg_files.load_aeg."""
    seed_everything(0)
    nets, ema = build_nets("official")
    assert init_from(nets_ema_path, nets, ema) == ["generator", "style_encoder"]
    config = load_config(write_training_set(tmp_path, cache=False, model="official"))
    trainer = Trainer(nets, ema, config, CPU)
    paths = trainer.save(tmp_path / "run")
    assert sorted(p.name for p in paths) == ["0_nets.ckpt", "0_nets_ema.ckpt", "0_optims.ckpt", "0_state.ckpt"]
    written = torch.load(paths[-1], weights_only=True)
    assert list(written) == list(EMA_NAMES)
    source = torch.load(nets_ema_path, map_location="cpu", weights_only=True)
    loaded = load_aeg(tmp_path / "run" / "0_nets_ema.ckpt")
    for name in EMA_NAMES:
        state = getattr(loaded, name).state_dict()
        assert state.keys() == source[name].keys()
        assert all(torch.equal(state[key], source[name][key]) for key in state)
    nets_file = torch.load(tmp_path / "run" / "0_nets.ckpt", weights_only=True, mmap=True)
    assert list(nets_file) == list(NET_NAMES)
    assert nets_file["discriminator"]["output.1.weight"].shape == (512, 512, 4, 4)
    assert nets_file["discriminator2"]["output.1.weight"].shape == (512, 512, 2, 2)
    assert torch.equal(nets_file["discriminator2"]["output.1.weight"], nets["discriminator2"].output[1].weight)
    assert torch.load(paths[2], weights_only=True)["step"] == 0


class TestCommandLine:
    def test_dry_run(self, tmp_path, capsys):
        config = write_training_set(tmp_path)
        assert main(["--config", str(config), "--dry-run"]) == 0
        assert "step 0" in capsys.readouterr().out
        assert not (tmp_path / "out").exists()

    def test_a_bad_config_is_one_line(self, tmp_path, capsys):
        config = write_training_set(tmp_path, cache=False, lr=-1)
        assert main(["--config", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "'lr' must be a finite number >= 0" in err and "\n" not in err

    def test_set_overrides_the_file(self, tmp_path, capsys):
        config = write_training_set(tmp_path)
        assert main(["--config", str(config), "--set", "total_steps=1", "--set", "output_dir=" + str(tmp_path / "o")]) == 0
        assert latest_step(tmp_path / "o") == 1
        from PIL import Image

        grid = Image.open(tmp_path / "o" / "samples" / "0000001.png")  # batch 2: two pairs, five columns
        assert grid.size == (5 * 256, 2 * 256) and len(np.unique(np.asarray(grid.convert("L")))) > 10
