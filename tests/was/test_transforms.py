"""Weight transforms on hand-written kernels, and their samplers' distributions."""

from __future__ import annotations

import collections

import pytest
import torch

from wascompress.was import transforms as T

K = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]


def kernel(rows):
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, 3, 3)


def test_zero_crop_keeps_window_and_zeros_the_rest():
    out = T.crop_window(K, T.CropWindow(top=1, left=0, height=2, width=2))
    assert torch.equal(out, kernel([[0, 0, 0], [4, 5, 0], [7, 8, 0]]))


def test_zero_crop_full_window_is_identity():
    assert torch.equal(T.crop_window(K, T.CropWindow(0, 0, 3, 3)), K)


def test_resize_crop_resizes_window_bilinearly():
    out = T.crop_window(K, T.CropWindow(0, 0, 2, 2, resize=True))
    # align_corners=False bilinear upsampling of [[1,2],[4,5]] to 3x3
    expected = kernel([[1.0, 1.5, 2.0], [2.5, 3.0, 3.5], [4.0, 4.5, 5.0]])
    assert torch.allclose(out, expected)
    assert (out != 0).all()


@pytest.mark.parametrize(
    "dy,dx,expected",
    [
        (0, 1, [[0, 1, 2], [0, 4, 5], [0, 7, 8]]),
        (0, -1, [[2, 3, 0], [5, 6, 0], [8, 9, 0]]),
        (1, 0, [[0, 0, 0], [1, 2, 3], [4, 5, 6]]),
        (-1, 1, [[0, 4, 5], [0, 7, 8], [0, 0, 0]]),
        (0, 0, [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        (3, 0, [[0, 0, 0], [0, 0, 0], [0, 0, 0]]),
    ],
)
def test_translate_shifts_with_zero_fill(dy, dx, expected):
    assert torch.equal(T.translate_kernel(K, T.KernelShift(dy, dx)), kernel(expected))


def test_rotate_quarter_turn():
    assert torch.equal(T.rotate_kernel(K, T.Rotation(1)), kernel([[3, 6, 9], [2, 5, 8], [1, 4, 7]]))
    assert torch.equal(T.rotate_kernel(K, T.Rotation(4)), K)


def test_filter_zeroes_unkept_filters():
    w = torch.randn(4, 2, 3, 3)
    out = T.keep_filters(w, T.FilterKeep((0, 2)))
    assert torch.equal(out[[0, 2]], w[[0, 2]])
    assert (out[[1, 3]] == 0).all()


def test_composition_applies_in_order():
    draws = (T.CropWindow(0, 0, 2, 2), T.KernelShift(1, 1))
    assert torch.equal(T.apply_draws(K, draws), kernel([[0, 0, 0], [0, 1, 2], [0, 4, 5]]))


@pytest.mark.parametrize("draw", [T.CropWindow(1, 1, 2, 2), T.KernelShift(-1, 1)])
def test_zero_rows_and_columns_are_layer_wide(draw):
    w = torch.randn(16, 8, 3, 3) + 10  # no accidental zeros
    out = T.apply_draw(w, draw)
    zero_taps = out == 0
    assert zero_taps.any()
    # the same taps are zero in every filter and input channel
    assert (zero_taps == zero_taps[0, 0]).all()
    rows = zero_taps[0, 0].all(dim=1)
    cols = zero_taps[0, 0].all(dim=0)
    # every zero tap lies on a whole zero row or column
    assert torch.equal(zero_taps[0, 0], rows[:, None] | cols[None, :])


@pytest.mark.parametrize("scale", [(0.4, 0.6), (0.2, 0.5), (0.6, 1.0), (0.1, 0.3)])
@pytest.mark.parametrize("k", [3, 5])
def test_zero_crop_area_fraction_stays_in_range(scale, k):
    g = torch.Generator().manual_seed(1)
    if not T.zero_crop_shapes((k, k), scale):
        pytest.skip("no admissible window")
    for _ in range(500):
        box = T.sample_crop(g, (k, k), scale)
        fraction = box.height * box.width / (k * k)
        assert scale[0] - 1e-9 <= fraction <= scale[1] + 1e-9
        assert 0 <= box.top <= k - box.height and 0 <= box.left <= k - box.width


def test_zero_crop_window_positions_are_all_reached():
    g = torch.Generator().manual_seed(0)
    positions = {(b.top, b.left) for b in (T.sample_crop(g, (3, 3), (0.4, 0.6)) for _ in range(400))}
    assert positions == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_resize_crop_reproduces_reference_full_kernel_rate():
    # the paper's code (docs/method.md §2): with scale (0.8, 1.0) on 3x3 kernels, 84.5 % of the reference's draws are the full kernel
    g = torch.Generator().manual_seed(0)
    boxes = [T.sample_crop(g, (3, 3), (0.8, 1.0), resize=True) for _ in range(20000)]
    full = sum((b.height, b.width) == (3, 3) for b in boxes) / len(boxes)
    assert abs(full - 0.845) < 0.015


def test_translate_distribution_matches_reference():
    # RandomAffine(translate=0.3) on a 3x3 kernel: shifts in {-1, 0, 1}, P(0) = 0.5 / 0.9 = 0.556
    g = torch.Generator().manual_seed(0)
    counts = collections.Counter(T.sample_shift(g, (3, 3), 0.3).dx for _ in range(20000))
    assert set(counts) == {-1, 0, 1}
    assert abs(counts[0] / 20000 - 0.556) < 0.015
    assert T.max_shift(3, 0.3) == 1 and T.max_shift(5, 0.3) == 2


def test_translate_never_exceeds_max_shift():
    g = torch.Generator().manual_seed(0)
    for _ in range(2000):
        s = T.sample_shift(g, (5, 5), 0.45)
        assert abs(s.dx) <= T.max_shift(5, 0.45) and abs(s.dy) <= T.max_shift(5, 0.45)


def test_filter_sampler_keeps_fraction_in_range():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        keep = T.sample_filters(g, 64, (0.5, 1.0))
        assert 32 <= len(keep.kept) <= 64
        assert list(keep.kept) == sorted(set(keep.kept))


def test_samplers_are_deterministic_per_generator_seed():
    def draws(seed):
        g = torch.Generator().manual_seed(seed)
        return [T.sample_crop(g, (3, 3), (0.4, 0.6)) for _ in range(20)] + [T.sample_shift(g, (3, 3), 0.3)]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)


def random_draws(generator: torch.Generator, kernel: tuple[int, int], out_channels: int) -> tuple:
    """A random composition of crops, shifts, filter keeps and (sometimes) rotation or resize."""
    draws = []
    for _ in range(int(torch.randint(1, 5, (), generator=generator))):
        kind = int(torch.randint(0, 6, (), generator=generator))
        if kind <= 1:
            draws.append(T.sample_crop(generator, kernel, (0.1, 1.0)))
        elif kind == 2:
            draws.append(T.sample_shift(generator, kernel, 0.45))
        elif kind == 3:
            draws.append(T.sample_filters(generator, out_channels, (0.3, 1.0)))
        elif kind == 4:
            draws.append(T.sample_rotation(generator, kernel))
        else:
            draws.append(T.sample_crop(generator, kernel, (0.3, 1.0), resize=True))
    return tuple(draws)


@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (3, 5)])
def test_fused_draws_equal_sequential_application_exactly(kernel):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, *kernel, requires_grad=True)
    for _ in range(300):
        draws = random_draws(g, kernel, 6)
        fused = T.FusedDraws(draws, kernel)
        out_fused, out_seq = fused(w), T.apply_draws(w, draws)
        assert torch.equal(out_fused, out_seq), draws
        upstream = torch.randn_like(w)
        (grad_fused,) = torch.autograd.grad(out_fused, w, upstream)
        (grad_seq,) = torch.autograd.grad(out_seq, w, upstream)
        assert torch.equal(grad_fused, grad_seq), draws


# ----------------------------------------------------------------------------------------------------
# Aligned DOM windows


def _impulse_response_centre(windows: list[T.CropWindow], size: int = 21) -> tuple[float, float]:
    """The centre of mass of a chain of 3x3 convs (padding 1, weights one inside each window) applied to
    a single bright pixel in the middle of the image: where the chain moved it."""
    x = torch.zeros(1, 1, size, size)
    x[0, 0, size // 2, size // 2] = 1.0
    for box in windows:
        x = torch.nn.functional.conv2d(x, T.crop_window(torch.ones(1, 1, 3, 3), box), padding=1)
    grid = torch.arange(size, dtype=x.dtype)
    mass = x.sum()
    return (float((x.sum(dim=(0, 1, 3)) * grid).sum() / mass) - size // 2,
            float((x.sum(dim=(0, 1, 2)) * grid).sum() / mass) - size // 2)


def test_aligned_windows_alternate_corners_so_a_chain_does_not_drift():
    drawn = [T.CropWindow(1, 1, 2, 2), T.CropWindow(1, 0, 2, 2), T.CropWindow(1, 1, 2, 2), T.CropWindow(0, 1, 2, 2),
             T.CropWindow(1, 1, 2, 2), T.CropWindow(1, 1, 2, 2)]
    aligned = [d[0] for d in T.align_windows([((box,), (3, 3)) for box in drawn])]
    assert [(b.top, b.left) for b in aligned] == [(0, 0), (1, 1)] * 3
    assert all((a.height, a.width) == (b.height, b.width) for a, b in zip(aligned, drawn))
    assert _impulse_response_centre(drawn) == pytest.approx((-2.0, -2.0))  # as drawn: 2 px up and left
    assert _impulse_response_centre(aligned) == pytest.approx((0.0, 0.0))  # every pair cancels


def test_aligned_windows_centre_an_odd_slack_and_count_other_layers_shifts():
    five = [((T.CropWindow(0, 2, 3, 3),), (5, 5))]
    assert T.align_windows(five)[0][0] == T.CropWindow(1, 1, 3, 3)  # centred: no shift at all
    shifted = (T.KernelShift(dy=1, dx=0),)  # a translated layer moves its output a full tap down
    keep = T.FilterKeep((0, 2))
    out = T.align_windows([(shifted, (3, 3)), ((T.CropWindow(0, 0, 2, 2), keep), (3, 3))])
    assert out[0] == shifted  # not a crop: left as drawn
    assert out[1] == (T.CropWindow(0, 0, 2, 2), keep)  # pulls back up (-0.5) and keeps its filters
    resized = (T.CropWindow(1, 1, 2, 2, resize=True),)
    assert T.align_windows([(resized, (3, 3))])[0] == resized  # a resizing crop keeps its taps' place
