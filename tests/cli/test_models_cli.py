"""``wascompress models`` at any input size, with a user's model listed beside the zoo."""

from __future__ import annotations

import torchvision

from wascompress.cli import main
from wascompress.models import create_model
from wascompress.models.cost import count_macs


def test_models_at_any_image_size(capsys):
    assert main(["models", "--width", "0.125", "--image-size", "64", "48",
                 "--model", "torchvision.models:mobilenet_v3_small"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-2:] == ["MACs", "(64x48)"]
    lines = {line.split()[0]: line for line in out[1:-1]}
    resnet = count_macs(create_model("resnet18", width=0.125), (3, 64, 48))
    assert lines["resnet18"].endswith(f"{resnet / 1e6:.1f} M")
    mobilenet = count_macs(torchvision.models.mobilenet_v3_small(num_classes=10), (3, 64, 48))
    assert lines["torchvision.models:mobilenet_v3_small"].endswith(f"{mobilenet / 1e6:.1f} M")
    assert lines["vgg16"].endswith("- (not 64x48)")  # its classifier is sized for 32x32 input


def test_the_old_input_size_flag_gives_the_same_table(capsys):
    tables = []
    for flag in ("--image-size", "--input-size"):
        assert main(["models", "--width", "0.125", flag, "40"]) == 0
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1] and "MACs (40x40)" in tables[0]
