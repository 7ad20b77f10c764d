"""pasl.train.config: the release's defaults, files, presets, overrides and one sentence per bad value."""

from __future__ import annotations

import json

import pytest

from pasl.errors import PASLError
from pasl.train.config import PRESETS, TrainConfig, from_mapping, load_config, parse_override, read_config_file

MINIMAL = {"pairs": "p.txt", "cache_dir": "c", "lambda_id": 0, "lambda_vgg": 0}


def test_defaults_are_the_release_settings():
    config = TrainConfig(pairs="p", cache_dir="c", vgg19_weights="v", pae_folder="f")
    assert (config.lr, config.beta1, config.beta2, config.weight_decay, config.ema_beta) == (1e-4, 0.0, 0.99, 1e-4, 0.999)
    weights = config.loss_weights
    assert (weights.adv, weights.id, weights.sty, weights.l2, weights.vgg, weights.reg) == (1.0, 100.0, 1.0, 100.0, 5.0, 1.0)
    assert config.seed == 777 and config.randcrop_prob == 0.5 and config.vgg_normalization == "imagenet"


def test_files_left_out_are_found_later_and_the_cache_follows_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(preset="finetune-person", overrides={"images": "me", "output_dir": "runs/me"})
    assert config.init_from == "auto" and config.vgg19_weights is None and config.pae_folder is None
    assert config.cache_dir == str(tmp_path / "runs" / "me" / "conditioning")
    (tmp_path / "run.json").write_text(json.dumps({"images": "me", "init_from": "auto"}))
    assert load_config(tmp_path / "run.json").init_from == "auto"  # a keyword, not a path next to the file


def test_relative_paths_start_at_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "run.json"
    path.write_text(json.dumps({**MINIMAL, "output_dir": "out", "weights_dirs": ["w", "/abs"]}))
    config = load_config(path)
    assert config.pairs == str(tmp_path / "sub" / "p.txt") and config.output_dir == str(tmp_path / "sub" / "out")
    assert config.weights_dirs == [str(tmp_path / "sub" / "w"), "/abs"]


def test_overrides_win_and_presets_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(preset="finetune-person", overrides={"images": "crops", "cache_dir": "c", "lambda_id": 0, "lambda_vgg": 0,
                                                              "init_from": "204000_nets_ema.ckpt", "batch_size": 2})
    assert config.images == str(tmp_path / "crops") and config.batch_size == 2
    assert config.lr == PRESETS["finetune-person"]["lr"] and config.total_steps == PRESETS["finetune-person"]["total_steps"]


def test_parse_override():
    assert parse_override("lr=2e-5") == ("lr", 2e-5)
    assert parse_override("flatten=true") == ("flatten", True)
    assert parse_override("output_dir=runs/a") == ("output_dir", "runs/a")
    with pytest.raises(PASLError, match="key=value"):
        parse_override("lr")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": -1.0}, "'lr' must be a finite number >= 0"),
        ({"lr": 0.0}, "'lr' must be > 0"),
        ({"beta2": 1.0}, r"'beta2' must lie in \[0, 1\)"),
        ({"ema_beta": 1.5}, r"'ema_beta' must lie in \[0, 1\]"),
        ({"batch_size": 0}, "'batch_size' must be at least 1"),
        ({"batch_size": 2.5}, "'batch_size' must be an int"),
        ({"batch_size": True}, "'batch_size' must be an int"),
        ({"precision": "fp8"}, "'precision' must be one of fp32, bf16, fp16"),
        ({"model": "huge"}, "'model' must be one of official, tiny"),
        ({"pairs": None}, "exactly one of 'pairs'"),
        ({"images": "x"}, "exactly one of 'pairs'"),
        ({"lambda_l2": float("nan")}, "'lambda_l2' must be a finite number"),
        ({"weights_dirs": "w"}, "'weights_dirs' must be a list of strings"),
        ({"flatten": "yes"}, "'flatten' must be a bool"),
        ({"pae_folder": "a", "arcface": "b", "lambda_id": 1.0}, "exclude each other"),
        ({"conditioning": "online", "num_workers": 2}, "'num_workers' must be 0 with conditioning 'online'"),
    ],
)
def test_each_bad_value_is_one_sentence_naming_the_key(change, message):
    with pytest.raises(PASLError, match=message) as info:
        from_mapping({**MINIMAL, **change}, "run.json")
    text = str(info.value)
    assert text.startswith("run.json: ") and text.endswith(".") and "\n" not in text


def test_unknown_keys_are_refused():
    with pytest.raises(PASLError, match="unknown config keys lamda_id"):
        from_mapping({**MINIMAL, "lamda_id": 0})


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(PASLError, match="could not be read"):
        read_config_file(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{lr: 1")
    with pytest.raises(PASLError, match="is not valid JSON"):
        read_config_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(PASLError, match="must hold a mapping"):
        load_config(tmp_path / "list.json")


def test_yaml_needs_pyyaml(tmp_path):
    (tmp_path / "run.yaml").write_text("pairs: p.txt\ncache_dir: c\nlambda_id: 0\nlambda_vgg: 0\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(PASLError, match="PyYAML is not installed; pip install pyyaml, or write the config as JSON"):
            load_config(tmp_path / "run.yaml")
    else:
        assert load_config(tmp_path / "run.yaml").pairs == str(tmp_path / "p.txt")


def test_unknown_preset():
    with pytest.raises(PASLError, match="unknown preset 'x'; the presets are finetune-person"):
        load_config(preset="x")
