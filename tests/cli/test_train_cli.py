"""``wascompress train``'s options: the names renamed for consistency still work under their old spelling
(on the command line and as config-file keys) and give the same configuration; ``--help`` shows the new."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_one_line_error
from wascompress.cli import build_parser
from wascompress.cli.train_cmd import overrides_from_args
from wascompress.train.config import TrainConfig, resolve_config

WAS_FLAGS = ("--model", "tiny", "--crop", "0.4", "0.6")


def train_config(*flags: str) -> TrainConfig:
    """The configuration ``wascompress train FLAGS`` would train (nothing is trained)."""
    args = build_parser().parse_args(["train", "--out", "unused", *flags])
    overrides = overrides_from_args(args)
    return resolve_config(overrides, args.config, overrides.pop("protocol"))


@pytest.mark.parametrize("new, old", [
    (("--target-macs", "0.5", "0.25"), ("--dom-target-macs", "0.5", "0.25")),
    (("--target-macs", "0.5", "--search-seeds", "8"), ("--dom-target-macs", "0.5", "--dom-search-seeds", "8")),
])
def test_old_flags_give_the_same_config(new, old):
    config = train_config(*WAS_FLAGS, *new)
    assert config == train_config(*WAS_FLAGS, *old)
    assert config.target_macs[0] == 0.5 and config != train_config(*WAS_FLAGS)


def test_old_config_file_keys_give_the_same_config(tmp_path):
    new, old = tmp_path / "new.json", tmp_path / "old.toml"
    new.write_text(json.dumps({"target_macs": [0.5, 0.25], "search_seeds": 8}))
    old.write_text("dom_target_macs = [0.5, 0.25]\ndom_search_seeds = 8\n")
    config = train_config(*WAS_FLAGS, "--config", str(new))
    assert config == train_config(*WAS_FLAGS, "--config", str(old))
    assert (config.target_macs, config.search_seeds) == ((0.5, 0.25), 8)
    # a flag under today's name still overrides the file's old key
    assert train_config(*WAS_FLAGS, "--config", str(old), "--search-seeds", "4").search_seeds == 4


def test_help_names_the_new_flags_only(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    shown = capsys.readouterr().out
    assert "--target-macs" in shown and "--search-seeds" in shown
    assert "--dom-target-macs" not in shown and "--dom-search-seeds" not in shown


def test_dom_seed_and_a_budget_under_either_name_is_one_line(run_main):
    for flag in ("--target-macs", "--dom-target-macs"):
        result = run_main("train", "--out", "unused", *WAS_FLAGS, "--dom-seed", "1", flag, "0.5")
        assert_one_line_error(result, "give --dom-seed or --target-macs, not both")
