"""The training configuration (``wascompress/train/config.py``): one-line refusals of bad settings, the
settings it settles, protocol < config file < flags, TOML and JSON files, earlier runs' names, round trip."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from wascompress.errors import ConfigError, WascompressError
from wascompress.train.config import PROTOCOLS, TrainConfig, read_config_file, resolve_config
from wascompress.was import WASConfig

CROP = WASConfig(crop=(0.4, 0.6))


# ---------------------------------------------------------------------------------------------------
# Validation: a bad setting is a one-line ConfigError naming it


@pytest.mark.parametrize("settings,fragment", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"batch_size": True}, "batch-size must be an integer"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"val_size": 2.5}, "val-size"),
    ({"workers": -1}, "workers"),
    ({"lr": 0}, "lr must be > 0"),
    ({"lr": float("nan")}, "lr must be a non-negative number"),
    ({"momentum": -0.1}, "momentum must be a non-negative number"),
    ({"weight_decay": "0.1"}, "weight-decay"),
    ({"protocol": "fast"}, "unknown protocol 'fast'; choose one of: paper, standard"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"select_mode": "best"}, "select mode must be one of"),
    ({"select_mode": "dom"}, "there is no DOM without WAS"),
    ({"width": 0}, "width must be in (0, 4]"),
    ({"width": 4.5}, "width must be in (0, 4]"),
    ({"image_size": (4,)}, "image size must be H or H W, integers in [8, 4096]"),
    ({"image_size": (32, 32, 3)}, "image size"),
    ({"was": WASConfig(dom_align=True)}, "--dom-align needs WAS settings"),
    ({"dom_seeds": 3}, "dom-seed must be a list"),
    ({"was": CROP, "dom_seeds": (1, -2)}, "dom-seed must be a non-negative integer, got -2"),
    ({"was": CROP, "dom_seeds": (4, 4)}, "dom-seed lists a seed twice: [4, 4]"),
    ({"was": CROP, "target_macs": 1.5}, "target-macs must be fractions"),
    ({"was": CROP, "target_macs": (0.5, 0.5)}, "distinct budgets"),
    ({"was": CROP, "target_macs": ()}, "distinct budgets"),
    ({"dom_seeds": (1,)}, "--dom-seed needs WAS settings"),
    ({"distill": True}, "--distill needs WAS settings"),
    ({"was_warmup": 1}, "--was-warmup needs WAS settings"),
    ({"was": CROP, "teacher": "init"}, "it needs --init-from FILE"),
    ({"was": CROP, "teacher": ""}, "teacher must be 'init' or a weights file"),
    ({"was": CROP, "distill": "yes"}, "distill must be true or false"),
    ({"was": CROP, "distill": True, "distill_weight": 1.5}, "distill-weight must be in [0, 1]"),
    ({"was": CROP, "distill": True, "distill_temperature": 0}, "distill-temperature must be > 0"),
    ({"was": CROP, "was_samples": 0}, "a WAS step must train some SW"),
    ({"was": CROP, "distill": True, "train_pw": False}, "needs PW trained in the step"),
    ({"was": CROP, "epochs": 2, "was_warmup": 2}, "was-warmup 2 leaves no WAS epoch of 2"),
    ({"model_kwargs": [1]}, "model-kwargs must be a JSON object"),
])
def test_a_bad_setting_is_a_one_line_config_error(settings, fragment):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**settings)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message
    assert isinstance(caught.value, WascompressError)  # the CLI turns it into one line and exit code 2


def test_settings_it_settles():
    assert TrainConfig(image_size=64).image_size == (64, 64)
    assert TrainConfig(image_size=[24, 40]).image_size == (24, 40)
    assert TrainConfig(was=WASConfig()).was is None  # WAS without a transform is the plain baseline
    fixed = TrainConfig(was=CROP, dom_seeds=[7, 2])
    assert fixed.dom_seeds == (7, 2) and fixed.eval_seed == 7  # the first trained DOM is the one evaluated
    assert fixed.was_samples == 0 and fixed.sandwich  # beside a fixed DOM no random draw by default
    assert TrainConfig(was=CROP, target_macs=0.5).target_macs == (0.5,)
    assert TrainConfig(was=CROP, target_macs=[1, 0.25]).target_macs == (1.0, 0.25)
    paper = TrainConfig(was=CROP)
    assert paper.was_samples == 1 and not paper.sandwich  # the paper's step: one random SW
    assert TrainConfig().was_samples == 1 and not TrainConfig().sandwich
    assert TrainConfig(was=CROP, distill=True).sandwich and TrainConfig(was=CROP, train_pw=False).sandwich


# ---------------------------------------------------------------------------------------------------
# resolve_config: protocol preset < config file < flags


def test_protocol_presets():
    paper = resolve_config({"model": "tiny"}, protocol="paper")
    assert (paper.lr, paper.weight_decay, paper.schedule, paper.augment) == (0.01, 0.0, "none", False)
    standard = resolve_config({"model": "tiny"}, protocol="standard")
    assert (standard.lr, standard.weight_decay, standard.schedule, standard.augment) == (0.1, 5e-4, "cosine", True)
    assert resolve_config({}).protocol == "paper"  # the default
    assert set(PROTOCOLS) == {"paper", "standard"}
    with pytest.raises(ConfigError, match="unknown protocol 'quick'"):
        resolve_config({}, protocol="quick")


def test_config_file_overrides_the_protocol_and_flags_override_the_file(tmp_path):
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"protocol": "standard", "lr": 0.2, "epochs": 7, "width": 0.5,
                                "was": {"translate": 0.2, "crop": [0.3, 0.5]}}))
    from_file = resolve_config({"model": "tiny", "epochs": None}, config_file=file)  # None: the flag was not given
    assert from_file.protocol == "standard" and from_file.weight_decay == 5e-4  # the file chose the preset
    assert (from_file.lr, from_file.epochs, from_file.width) == (0.2, 7, 0.5)  # the file beats the preset
    assert from_file.was == WASConfig(crop=(0.3, 0.5), translate=0.2)
    flags = resolve_config({"model": "tiny", "lr": 0.05, "epochs": 3, "was": {"crop": [0.4, 0.6]}}, config_file=file)
    assert (flags.lr, flags.epochs, flags.width) == (0.05, 3, 0.5)  # flags beat the file
    assert flags.was == WASConfig(crop=(0.4, 0.6), translate=0.2)  # per WAS setting
    paper = resolve_config({"model": "tiny"}, config_file=file, protocol="paper")
    assert paper.protocol == "paper" and paper.weight_decay == 0.0 and paper.lr == 0.2  # the preset named wins
    assert resolve_config({"protocol": "paper"}, config_file=file).weight_decay == 0.0


def test_toml_and_json_files_give_the_same_configuration(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('model = "tiny"\nepochs = 4\nimage_size = [24, 40]\ndom_seeds = [3]\n\n'
                    '[was]\ncrop = [0.4, 0.6]\nfilter = [0.5, 1.0]\n')
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"model": "tiny", "epochs": 4, "image_size": [24, 40], "dom_seeds": [3],
                                   "was": {"crop": [0.4, 0.6], "filter": [0.5, 1.0]}}))
    assert read_config_file(toml) == read_config_file(as_json)
    config = resolve_config({}, config_file=toml)
    assert config == resolve_config({}, config_file=as_json)
    assert (config.epochs, config.image_size, config.dom_seeds) == (4, (24, 40), (3,))
    assert config.was == WASConfig(crop=(0.4, 0.6), filter=(0.5, 1.0))


@pytest.mark.parametrize("name,text,fragment", [
    ("run.json", "{lr: 0.1", "cannot parse config file"),
    ("run.toml", "lr = = 0.1", "cannot parse config file"),
    ("run.json", "[1, 2]", "must hold a table of settings"),
    ("run.json", '{"lr": 0.1, "learning_rate": 0.1}', "unknown training setting(s): learning_rate"),
    ("run.toml", "[was]\ncrop = [0.4, 1.5]\n", "crop range must lie in (0, 1]"),
])
def test_a_bad_config_file_is_a_one_line_error(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        resolve_config({}, config_file=path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*absent.toml"):
        resolve_config({}, config_file=tmp_path / "absent.toml")


# ---------------------------------------------------------------------------------------------------
# Stored configurations: round trip, and earlier wascompress's names


def test_to_dict_from_dict_round_trip_through_json():
    config = TrainConfig(model="tiny", model_kwargs={"dropout": 0.1}, width=0.5, image_size=(24, 40),
                         protocol="standard", epochs=3, was=WASConfig(crop=(0.4, 0.6), translate=0.3),
                         dom_seeds=(5, 2), was_samples=1, distill=True, distill_weight=0.3,
                         distill_temperature=2.0, teacher="init", init_from="/runs/a/best.pt",
                         target_macs=(0.5, 0.25), select_mode="dom")
    data = config.to_dict()
    assert set(data) == {f.name for f in fields(TrainConfig)}
    stored = json.loads(json.dumps(data))  # config.json and the checkpoint hold plain JSON values
    assert stored == data
    again = TrainConfig.from_dict(stored)
    assert again == config and again.to_dict() == data
    assert again.dom_seeds == (5, 2) and again.image_size == (24, 40) and again.target_macs == (0.5, 0.25)
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_from_dict_refuses_unknown_settings():
    with pytest.raises(ConfigError, match=r"unknown training setting\(s\): colour, size"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "size": 3, "colour": "red"})


def test_configurations_of_earlier_runs_read_in_todays_names():
    old = TrainConfig(model="tiny", was=CROP, dom_seeds=(3,), train_pw=False).to_dict()
    for key in ("init_from", "init_sha256", "teacher", "model_kwargs"):
        old.pop(key)
    old.update(init_checkpoint="/runs/a/best.pt", teacher="checkpoint", distill=True, dom_target_macs=0.5)
    config = TrainConfig.from_dict(old)  # a fine-tuning run distilled from its source checkpoint
    assert (config.init_from, config.teacher, config.distill) == ("/runs/a/best.pt", "init", False)
    assert config.target_macs == (0.5,)
    old.update(teacher="aom", distill=True, train_pw=True)  # "aom" was in-place distillation: today no teacher
    assert TrainConfig.from_dict(old).teacher is None and TrainConfig.from_dict(old).distill
    old.update(teacher="checkpoint", distill=False)  # the checkpoint teacher without distill did not distil
    assert (TrainConfig.from_dict(old).teacher, TrainConfig.from_dict(old).distill) == (None, False)
    both = {**old, "teacher": None, "init_from": "/new.pt"}  # today's name wins over the old one
    assert TrainConfig.from_dict(both).init_from == "/new.pt"
    assert "init_checkpoint" in old  # the caller's dict is not changed
