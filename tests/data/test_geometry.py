"""Input geometry (``wascompress/data/geometry.py``): the (height, width) a run trains at, an input shape
given as text, and the RGB check; every bad value a one-line ConfigError."""

from __future__ import annotations

import pytest

from wascompress.data.geometry import DEFAULT_IMAGE_SIZE, SIZE_RANGE, image_input_shape, image_size, parse_input_shape
from wascompress.errors import ConfigError


def assert_one_line(caught: pytest.ExceptionInfo, fragment: str) -> None:
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message


@pytest.mark.parametrize("value,expected", [
    (32, (32, 32)), ([24], (24, 24)), ((24, 40), (24, 40)), ([40, 24], (40, 24)),
    (SIZE_RANGE[0], (8, 8)), ([SIZE_RANGE[1], 8], (4096, 8)),
])
def test_image_size_from_h_or_h_w(value, expected):
    assert image_size(value) == expected
    assert DEFAULT_IMAGE_SIZE == (32, 32)  # runs recorded before the setting existed trained at 32x32


@pytest.mark.parametrize("value", [7, 4097, 0, -32, [], [32, 32, 3], 32.0, [32, 24.5], True, [True, 32], "32", None])
def test_a_bad_image_size_is_refused(value):
    with pytest.raises(ConfigError) as caught:
        image_size(value)
    assert_one_line(caught, "image size must be H or H W")


@pytest.mark.parametrize("text,expected", [
    ("3,224,224", (3, 224, 224)), ("3x24x40", (3, 24, 40)), (" 3, 32 ,32", (3, 32, 32)),
    ("1,16000", (1, 16000)),  # any model's one input (the profiler takes audio too): no fixed rank here
])
def test_parse_input_shape(text, expected):
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize("text", ["", "3,,32", "3;32;32", "3,32.5,32", "C,H,W", "3,0,32", "3,-32,32", "3X32X32"])
def test_a_bad_input_shape_is_refused_with_an_example(text):
    with pytest.raises(ConfigError) as caught:
        parse_input_shape(text)
    assert_one_line(caught, f"input shape must be C,H,W (positive integers, e.g. 3,224,224), got {text!r}")


def test_image_input_shape_takes_rgb_images_of_a_valid_size():
    assert image_input_shape((3, 24, 40), "export") == (3, 24, 40)
    assert image_input_shape([3, 32, 32], "export") == (3, 32, 32)
    for shape in [(1, 32, 32), (3, 32), (3, 32, 32, 1)]:
        with pytest.raises(ConfigError) as caught:
            image_input_shape(shape, "evaluate")
        assert_one_line(caught, f"evaluate takes RGB images: the input shape must be 3,H,W, got "
                                f"{','.join(map(str, shape))}")
    with pytest.raises(ConfigError) as caught:
        image_input_shape((3, 4, 32), "export")  # RGB, but smaller than any data set delivers
    assert_one_line(caught, "integers in [8, 4096]")
