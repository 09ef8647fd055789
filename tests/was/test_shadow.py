"""Shadow weights on real models: gradients reach PW, AOM is the plain model, DOM seeds are reproducible."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from wascompress.errors import ConfigError
from wascompress.models import create_model, list_models
from wascompress.was.transforms import CropWindow, KernelShift, translate_kernel
from wascompress.was import (
    WASConfig,
    apply_was_,
    dom_draws,
    freeze_dom_,
    load_plain_state_dict,
    plain_state_dict,
    resample_,
    shadow_mode,
    strip_was_,
    use_dom_,
    use_pw_,
    was_layers,
)

CROP_TRANSLATE = WASConfig(crop=(0.4, 0.6), translate=0.3)
ALL_ZEROING = WASConfig(crop=(0.4, 0.6), translate=0.3, filter=(0.5, 0.9))
IN_PLACE_ZEROING = WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.9))  # zeroes taps without moving any


def small(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=5, width=0.25)


@pytest.mark.parametrize("name", list_models())
def test_was_step_on_every_zoo_model(name):
    model = small(name)
    plain = copy.deepcopy(model).eval()
    layers = apply_was_(model, IN_PLACE_ZEROING)
    assert layers, name
    x = torch.randn(2, 3, 32, 32)

    # AOM output equals the plain model's output
    model.eval()
    use_pw_(model)
    assert torch.equal(model(x), plain(x))

    # one training step with SW: PW gets non-zero gradients, zeroed taps get exactly zero
    model.train()
    assert resample_(model, torch.Generator().manual_seed(3))
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1]))
    loss.backward()
    for layer_name, sw in was_layers(model).items():
        conv = model.get_submodule(layer_name)
        grad = conv.parametrizations.weight.original.grad
        assert grad is not None and grad.abs().sum() > 0, layer_name
        with torch.no_grad():
            shadow = conv.weight
        zero_taps = shadow == 0
        assert zero_taps.any(), layer_name  # filter keeps <= 90 %: some filter is zero
        assert (grad[zero_taps] == 0).all(), layer_name


def test_taps_shifted_out_by_translate_get_zero_gradient():
    torch.manual_seed(0)
    model = create_model("tiny")
    apply_was_(model, WASConfig(translate=0.3))
    generator = torch.Generator().manual_seed(0)
    resample_(model, generator)
    while all(l.draws[0] == KernelShift(0, 0) for l in was_layers(model).values()):
        resample_(model, generator)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for layer_name, sw in was_layers(model).items():
        (shift,) = sw.draws
        weight = model.get_submodule(layer_name).parametrizations.weight.original
        # a PW tap contributes to SW iff shifting it lands inside the kernel
        used = translate_kernel(torch.ones_like(weight), KernelShift(-shift.dy, -shift.dx)) != 0
        assert (weight.grad[~used] == 0).all(), layer_name
        assert (weight.grad[used] != 0).any(), layer_name


def test_aom_output_equals_plain_model_for_torchvision_model():
    model = torchvision.models.resnet18(num_classes=10)
    plain = copy.deepcopy(model).eval()
    apply_was_(model, CROP_TRANSLATE)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), plain(x))
    # the stem (first conv) and 1x1 shortcuts are left alone
    assert "conv1" not in was_layers(model)
    assert not any("downsample" in n for n in was_layers(model))


def freeze(seed: int, config: WASConfig = ALL_ZEROING) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("tiny", width=1.0)
    apply_was_(model, config)
    return freeze_dom_(model, seed).state_dict()


def test_freeze_dom_is_bit_identical_per_seed_and_differs_across_seeds():
    a, b, c = freeze(7), freeze(7), freeze(8)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_freeze_dom_does_not_depend_on_training_rng_state():
    a = freeze(11)
    torch.manual_seed(12345)
    torch.rand(100)
    b = freeze(11)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_aligned_dom_keeps_the_seeds_shapes_and_cancels_each_residual_branch():
    nets = {}
    for align in (False, True):
        nets[align] = create_model("resnet18", width=0.125)
        apply_was_(nets[align], WASConfig(crop=(0.2, 0.7), filter=(0.5, 0.9), dom_align=align))
    for seed in (0, 5):
        drawn, aligned = dom_draws(nets[False], seed), dom_draws(nets[True], seed)
        assert aligned == dom_draws(nets[True], seed)  # still a pure function of the seed
        for name in drawn:
            (box, keep), (placed, kept) = drawn[name], aligned[name]
            assert (placed.height, placed.width, kept) == (box.height, box.width, keep)
        for block in ("layer1.0", "layer2.1", "layer4.1"):  # the two convs of a block's branch cancel
            first, second = (aligned[f"{block}.conv{i}.conv"][0] for i in (1, 2))
            for start, size in ((lambda b: b.top, lambda b: b.height), (lambda b: b.left, lambda b: b.width)):
                shift = sum(start(b) - (3 - size(b)) / 2 for b in (first, second))
                assert abs(shift) <= 0.5, (block, first, second)


def test_freeze_dom_gives_plain_model_with_shadow_weights():
    torch.manual_seed(0)
    model = create_model("tiny")
    apply_was_(model, CROP_TRANSLATE)
    with shadow_mode(model, "dom", seed=4):
        x = torch.randn(2, 3, 32, 32)
        expected = model.eval()(x)
    frozen = freeze_dom_(copy.deepcopy(model), 4)
    assert not was_layers(frozen)
    assert all(isinstance(m.weight, nn.Parameter) for m in frozen.modules() if isinstance(m, nn.Conv2d))
    assert torch.equal(frozen.eval()(x), expected)


def test_shadow_mode_restores_previous_draws():
    model = create_model("tiny")
    apply_was_(model, CROP_TRANSLATE)
    resample_(model, torch.Generator().manual_seed(0))
    before = {n: l.draws for n, l in was_layers(model).items()}
    with shadow_mode(model, "dom", seed=1):
        assert {n: l.draws for n, l in was_layers(model).items()} == dom_draws(model, 1)
    with shadow_mode(model, "aom"):
        assert all(l.draws is None for l in was_layers(model).values())
    assert {n: l.draws for n, l in was_layers(model).items()} == before


def test_strip_restores_plain_weights_and_state_dict_round_trips():
    torch.manual_seed(0)
    model = create_model("tiny")
    reference = copy.deepcopy(model.state_dict())
    apply_was_(model, CROP_TRANSLATE)
    state = plain_state_dict(model)
    assert state.keys() == reference.keys()
    use_dom_(model, 3)
    strip_was_(model)
    assert all(torch.equal(model.state_dict()[k], reference[k]) for k in reference)
    other = create_model("tiny")
    apply_was_(other, CROP_TRANSLATE)
    load_plain_state_dict(other, state)
    assert all(torch.equal(plain_state_dict(other)[k], reference[k]) for k in reference)


def test_prob_zero_never_uses_sw_and_prob_half_sometimes():
    model = create_model("tiny")
    apply_was_(model, WASConfig(crop=(0.4, 0.6), prob=0.0))
    g = torch.Generator().manual_seed(0)
    assert not any(resample_(model, g) for _ in range(50))
    model = create_model("tiny")
    apply_was_(model, WASConfig(crop=(0.4, 0.6), prob=0.5))
    used = [resample_(model, g) for _ in range(400)]
    assert 150 < sum(used) < 250


def test_choice_policy_picks_one_transform_per_layer():
    model = create_model("tiny")
    apply_was_(model, WASConfig(crop=(0.4, 0.6), translate=0.3, policy="choice"))
    g = torch.Generator().manual_seed(0)
    kinds = set()
    for _ in range(30):
        resample_(model, g)
        for layer in was_layers(model).values():
            assert len(layer.draws) == 1
            kinds.add(type(layer.draws[0]).__name__)
    assert kinds == {"CropWindow", "KernelShift"}


def test_layer_selection_default_and_patterns():
    model = create_model("resnet18", width=0.125)
    layers = apply_was_(model, CROP_TRANSLATE)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs[0] not in layers  # the first conv is skipped
    assert all(max(model.get_submodule(n).kernel_size) >= 3 for n in layers)
    model = create_model("resnet18", width=0.125)
    only = apply_was_(model, WASConfig(crop=(0.4, 0.6), include=("layer1.*",), exclude=("*.conv2",)))
    assert only and all(n.startswith("layer1.") and not n.endswith("conv2") for n in only)


def test_transform_layers_give_each_layer_its_own_transforms():
    plain = create_model("resnet18", width=0.125)
    apply_was_(plain, WASConfig(crop=(0.4, 0.6)))
    mixed = create_model("resnet18", width=0.125)
    layers = apply_was_(mixed, WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.5),
                                        transform_layers=("crop:layer1.*", "filter:layer[34].*.conv1.conv")))
    assert all(n.startswith(("layer1.", "layer3.", "layer4.")) for n in layers)  # layer2: no transform, plain PW
    assert "layer3.0.conv2.conv" not in layers and "layer4.1.conv1.conv" in layers
    draws = dom_draws(mixed, 3)
    assert dom_draws(mixed, 3) == draws  # still a pure function of the seed
    kinds = {name: tuple(type(d).__name__ for d in draw) for name, draw in draws.items()}
    assert {k for n, k in kinds.items() if n.startswith("layer1.")} == {("CropWindow",)}
    assert {k for n, k in kinds.items() if not n.startswith("layer1.")} == {("FilterKeep",)}
    assert all(len(draw[0].kept) == conv.out_channels // 2 for name, draw in draws.items()
               if (conv := mixed.get_submodule(name)) and name.startswith("layer4"))
    assert dom_draws(plain, 3)["layer1.0.conv1.conv"] == draws["layer1.0.conv1.conv"]  # same stream up to there
    x = torch.randn(2, 3, 32, 32)
    with shadow_mode(mixed.eval(), "dom", seed=3):
        out = mixed(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "config,fragment",
    [
        (WASConfig(crop=(0.4, 0.6), filter=(0.5, 0.5), transform_layers=("filter:nothing.*",)),
         "filter:nothing.* matches no WAS layer"),
        (WASConfig(crop=(0.4, 0.6), include=("nothing.*",)), "nothing.*"),
        (WASConfig(crop=(0.4, 0.6), exclude=("*",)), "selects no conv layer"),
        (WASConfig(crop=(0.4, 0.6), min_kernel=7), "selects no conv layer"),
        (WASConfig(), "at least one transform"),
    ],
)
def test_bad_layer_selection_raises(config, fragment):
    with pytest.raises(ConfigError) as err:
        apply_was_(create_model("tiny"), config)
    assert fragment in str(err.value)


def test_bad_seed_and_double_apply_raise():
    model = create_model("tiny")
    apply_was_(model, CROP_TRANSLATE)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ConfigError, match="non-negative integer"):
            use_dom_(model, bad)
    with pytest.raises(ConfigError, match="already"):
        apply_was_(model, CROP_TRANSLATE)


def test_freezing_a_deep_copy_leaves_the_original_usable():
    model = create_model("tiny")
    apply_was_(model, CROP_TRANSLATE)
    for seed in range(3):
        frozen = freeze_dom_(copy.deepcopy(model), seed)
        assert not was_layers(frozen)
    strip_was_(copy.deepcopy(model))
    assert len(was_layers(model)) == 5
    model(torch.randn(1, 3, 32, 32))


def test_a_shared_draw_gives_every_layer_one_size_and_seeds_span_the_range():
    """``shared``: one size level per SW (as a width multiplier): the crop area and filters kept of every
    layer follow it, so DOM seeds range from small to whole networks instead of all near the mean."""
    from wascompress.export.budget import seed_costs

    model = create_model("vgg16", num_classes=10, width=0.25)
    apply_was_(model, WASConfig(crop=(0.4, 1.0), filter=(0.5, 1.0), shared=True))
    admissible = (4 / 9, 6 / 9, 1.0)  # 2x2, 2x3 / 3x2, 3x3
    for seed in range(6):
        level = float(torch.rand((), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
        area, kept = 0.4 + 0.6 * level, 0.5 + 0.5 * level
        below = max([f for f in admissible if f <= area] or [admissible[0]])
        above = min([f for f in admissible if f >= area] or [admissible[-1]])
        for name, (crop, filters) in dom_draws(model, seed).items():
            # every layer's window is one of the two shapes around the level's area (the aspect drawn per layer
            # rounds to either), and it keeps the level's fraction of its filters
            assert below - 1e-9 <= crop.height * crop.width / 9 <= above + 1e-9, (seed, name, crop, area)
            assert abs(len(filters.kept) / model.get_submodule(name).out_channels - kept) <= 1 / 32, (seed, name)
    ratios = [c.ratio for c in seed_costs(model, range(8), (3, 32, 32))]
    assert min(ratios) < 0.45 and max(ratios) == 1.0
    independent = create_model("vgg16", num_classes=10, width=0.25)
    apply_was_(independent, WASConfig(crop=(0.4, 1.0), filter=(0.5, 1.0)))
    assert dom_draws(independent, 0) != dom_draws(model, 0)
    # the default (independent draws per layer) is what it was: a seed's draws do not change with the option added
    plain = create_model("tiny", num_classes=10)
    apply_was_(plain, WASConfig(crop=(0.4, 0.6)))
    assert [d[0] for d in dom_draws(plain, 3).values()] == [  # as drawn before the option existed
        CropWindow(top=0, left=0, height=2, width=2, resize=False), CropWindow(top=0, left=1, height=2, width=2, resize=False),
        CropWindow(top=1, left=0, height=2, width=2, resize=False), CropWindow(top=1, left=0, height=2, width=2, resize=False),
        CropWindow(top=0, left=0, height=2, width=2, resize=False)]
