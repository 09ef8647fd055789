"""WASConfig validation: bad settings fail at once with a message naming the value."""

from __future__ import annotations

import pytest

from wascompress.errors import ConfigError
from wascompress.was import WASConfig


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"crop": (0.0, 0.5)}, "(0, 0.5)"),
        ({"crop": (0.5, 1.2)}, "1.2"),
        ({"crop": (0.7, 0.4)}, "LO <= HI"),
        ({"crop": (0.4,)}, "(0.4,)"),
        ({"translate": 1.0}, "1.0"),
        ({"translate": -0.1}, "-0.1"),
        ({"filter": (0.5, 1.5)}, "1.5"),
        ({"crop": (0.4, 0.6), "crop_mode": "blur"}, "'blur'"),
        ({"crop": (0.4, 0.6), "policy": "random"}, "'random'"),
        ({"crop": (0.4, 0.6), "prob": 1.5}, "1.5"),
        ({"crop": (0.4, 0.6), "dom_align": "yes"}, "'yes'"),
        ({"crop": (0.4, 0.6), "transform_layers": ("crop",)}, "TRANSFORM:GLOB, got 'crop'"),
        ({"crop": (0.4, 0.6), "transform_layers": ("crop:",)}, "TRANSFORM:GLOB, got 'crop:'"),
        ({"crop": (0.4, 0.6), "transform_layers": ("filter:layer4.*",)}, "'filter', which is not an enabled"),
    ],
)
def test_bad_values_raise_naming_the_value(kwargs, fragment):
    with pytest.raises(ConfigError) as err:
        WASConfig(**kwargs)
    assert fragment in str(err.value)


def test_unknown_transform_in_dict_is_named():
    with pytest.raises(ConfigError, match="shear"):
        WASConfig.from_dict({"shear": 0.2})


def test_round_trip_through_dict():
    config = WASConfig(crop=(0.4, 0.6), translate=0.3, filter=(0.5, 1.0), policy="choice", prob=0.5,
                       exclude=("layer4.*",), dom_align=True, transform_layers=("filter:layer[34].*",))
    assert WASConfig.from_dict(config.to_dict()) == config


def test_a_config_saved_before_aligned_doms_loads_unaligned():
    saved = {k: v for k, v in WASConfig(crop=(0.4, 0.6)).to_dict().items() if k != "dom_align"}
    assert WASConfig.from_dict(saved).dom_align is False
    assert WASConfig(crop=(0.4, 0.6), dom_align=True).describe() == "crop(0.4,0.6,zero), aligned DOM"


def test_transforms_in_fixed_order():
    config = WASConfig(filter=(0.5, 1.0), rotate=True, translate=0.3, crop=(0.4, 0.6))
    assert config.transforms == ("crop", "translate", "rotate", "filter")
    assert config.describe() == "crop(0.4,0.6,zero)+translate(0.3)+rotate+filter(0.5,1)"


def test_zero_crop_range_without_window_names_layer():
    config = WASConfig(crop=(0.5, 0.6))  # 3x3: fractions 4/9 and 6/9 straddle the range
    with pytest.raises(ConfigError, match="block.conv"):
        config.check_kernel("block.conv", (3, 3))
    config.check_kernel("big", (5, 5))  # 3x5 = 15/25 = 0.6 lies in the range


def test_transform_layers_restrict_a_transform_to_its_globs():
    config = WASConfig(crop=(0.4, 0.6), translate=0.3, filter=(0.5, 0.5),
                       transform_layers=("crop:layer1.*", "filter:layer3.*", "filter:layer4.*"))
    assert config.layer_patterns == {"crop": ("layer1.*",), "filter": ("layer3.*", "layer4.*")}
    assert config.layer_transforms("layer1.0.conv1") == ("crop", "translate")  # translate: every layer
    assert config.layer_transforms("layer4.1.conv2") == ("translate", "filter")
    assert config.layer_transforms("layer2.0.conv1") == ("translate",)
    assert config.describe().endswith("[crop:layer1.* filter:layer3.* filter:layer4.*]")
    config.check_kernel("layer4.0.conv", (1, 1))  # no crop there: a 1x1 kernel is no error
    with pytest.raises(ConfigError, match="layer1.0"):
        config.check_kernel("layer1.0", (1, 1))
