"""What a plan can cut: coupled channel groups as torch-pruning sees them, and a MAC count that must agree
with the graph the exporter builds."""

from __future__ import annotations

import torch

from wascompress.export.exporter import ExportConfig, mode_model, prune_model
from wascompress.models import create_model
from wascompress.models.cost import count_macs
from wascompress.plan.structure import model_structure
from wascompress.was import apply_was_, recalibrate_bn_
from wascompress.was.planned import PLAN_WAS, DomPlan, LayerCut, fingerprint

SHAPE = (3, 32, 32)


def tiny(width: float = 2.0) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny", width=width)
    recalibrate_bn_(model, [torch.randn(128, *SHAPE)])  # BatchNorm statistics of its own, as a trained net has
    return model.eval()


def test_residual_and_depthwise_partners_form_one_group():
    """Catches groups taken per conv: conv3, res2 (added to conv3's output) and the depthwise conv that
    reads their sum must keep the same channels, or the addition and the depthwise conv break."""
    structure = model_structure(tiny(), SHAPE)
    producers = {g.producers for g in structure.groups}
    assert ("conv3.conv", "res2.conv", "depthwise.conv") in producers
    coupled = next(g for g in structure.groups if "res2.conv" in g.producers)
    assert set(coupled.consumers) == {"res1.conv", "fc"}
    assert sorted(coupled.ranking) == list(range(coupled.channels))


def pruned_graph_macs(model: torch.nn.Module, plan: DomPlan) -> tuple[int, torch.nn.Module]:
    config = ExportConfig(mode="dom", plan=plan, recalibrate_bn=False, input_shape=SHAPE)
    pruned, _ = prune_model(mode_model(model, config, None), config)
    return count_macs(pruned, SHAPE), pruned


def test_predicted_macs_match_the_exported_graph_and_coupled_channels_go_together():
    """Catches a MAC model that forgets the consumers of cut channels (or the depthwise rule), and an export
    that removes a coupled group's channels from one producer only."""
    model = tiny()
    structure = model_structure(model, SHAPE)
    group = next(i for i, g in enumerate(structure.groups) if "res2.conv" in g.producers)
    kept = tuple(sorted(structure.groups[group].ranking[:16]))
    cuts = {p: LayerCut(kept=kept) for p in structure.groups[group].producers}
    cuts["conv2.conv"] = LayerCut(window=(0, 1, 2, 2))
    cuts["res1.conv"] = LayerCut(window=(1, 0, 1, 3))
    apply_was_(model, PLAN_WAS)
    macs, pruned = pruned_graph_macs(model, DomPlan(fingerprint(model), cuts, channel_step=8))
    predicted = structure.macs({"conv2.conv": (2, 2), "res1.conv": (1, 3)}, {group: 16})
    dense = structure.macs({}, {})
    assert abs(macs - predicted) / dense < 0.001, (macs, predicted)
    assert predicted < 0.7 * dense
    convs = {n.removesuffix(".conv.conv").removesuffix(".conv") + ".conv": m for n, m in pruned.named_modules()
             if isinstance(m, torch.nn.Conv2d)}
    assert [convs[p].out_channels for p in structure.groups[group].producers] == [16, 16, 16]
    assert convs["res1.conv"].in_channels == 16 and convs["depthwise.conv"].groups == 16
    assert tuple(convs["conv2.conv"].kernel_size) == (2, 2) and tuple(convs["res1.conv"].kernel_size) == (1, 3)
