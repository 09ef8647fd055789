"""The results renderer's DOM-study plot: one marker per row, with or without measured latency."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
render_results = pytest.importorskip("render_results")
import study_dom  # noqa: E402


def stat(mean: float, std: float = 0.0, n: int = 1) -> dict[str, float]:
    return {"mean": mean, "std": std, "n": n}


def study_row(model: str, name: str, top1: float, mac_ratio: float, **by_seed: float) -> dict:
    """A row of the study's table: seed 0 at ``top1`` unless seeds are given (``s0=..., s1=...``)."""
    seeds = {int(key[1:]): value for key, value in by_seed.items()} or {0: top1}
    return {"model": model, "row": name, "test_top1": stat(sum(seeds.values()) / len(seeds), n=len(seeds)),
            "top1_by_seed": seeds, "mac_ratio": mac_ratio}


def test_study_plot_is_a_png_with_and_without_latency():
    pytest.importorskip("matplotlib")
    table = [
        {"model": "vgg16", "row": "baseline", "test_top1": stat(0.84, 0.004, 2), "mac_ratio": 1.0,
         "latency_ratio_b32": None},
        {"model": "vgg16", "row": "sandwich", "test_top1": stat(0.82, 0.003, 2), "mac_ratio": 0.457,
         "latency_ratio_b32": stat(0.52, 0.01, 2)},
        {"model": "resnet18", "row": "scratch", "test_top1": stat(0.8), "mac_ratio": 0.46, "latency_ratio_b32": None},
        {"model": "vgg16", "row": "paper-ct", "test_top1": stat(0.42, 0.01, 2), "mac_ratio": 0.386,  # below the axis
         "latency_ratio_b32": stat(0.49, 0.02, 2)},
    ]
    for rows in (table, [dict(r, latency_ratio_b32=None) for r in table]):
        png = render_results.study_dom_plot(rows)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_int8_table_gives_the_speed_up_without_the_stem():
    row = {"model": "tv_resnet18", "size": 224, "width": 1.0, "batch": 32, "aom_fp32_ms": 600.0,
           "stem": {"aom_fp32": {"time_share": 0.1, "mac_share": 0.07},
                    "dom_int8": {"time_share": 0.25, "mac_share": 0.13}}}
    for form, ms in (("aom_int8", 300.0), ("dom_fp32", 300.0), ("dom_int8", 180.0)):
        row.update({f"{form}_ms": ms, f"{form}_speedup": 600.0 / ms})
    result = {"was": {"crop": [0.4, 0.6]}, "quantize": {"calibration": "minmax", "reduce_range": True},
              "threads": 2, "rounds": 5, "speedup_goal": 4.0, "batches": [1, 32], "accuracy_goal_points": 1.0,
              "command": "python benchmarks/bench_int8.py", "machine": "m", "date": "d", "rows": [row],
              "accuracy": [], "dom_int8_speedup_vs_aom_fp32": 600.0 / 180.0}
    table = "\n".join(render_results.int8(result))
    assert "| tv_resnet18 | 10.0 % / 7.0 % | 25.0 % / 13.0 % | 4.00x |" in table  # 540 ms / 135 ms


def test_each_dom_row_is_set_against_baseline_competitor_and_control():
    rows = [study_row("vgg16", name, top1, ratio) for name, top1, ratio in (
        ("baseline", 0.8442, 1.0), ("torch-pruning", 0.7960, 0.42), ("scratch", 0.8331, 0.457),
        ("sandwich-pair", 0.8427, 0.457), ("sandwich", 0.8208, 0.457))]
    sentences = render_results.dom_row_sentences(rows, "vgg16", ("sandwich", "sandwich-pair"))
    assert sentences == [
        "sandwich-pair: 84.27 % (points against baseline -0.15, torch-pruning +4.67, scratch +0.96); meets the goal.",
        "sandwich: 82.08 % (points against baseline -2.34, torch-pruning +2.48, scratch -1.23); misses the goal "
        "(2.34 points under the baseline, 1.34 beyond the 1-point line; 1.23 points under scratch)."]
    assert render_results.dom_row_sentences(rows[:1] + rows[3:4], "vgg16", ("sandwich-pair",)) == [
        "sandwich-pair: 84.27 % (points against baseline -0.15)."]  # no verdict before the comparison rows exist


def test_a_dom_row_with_its_own_control_is_set_against_that_control():
    rows = [study_row("resnet18", name, top1, 0.458) for name, top1 in (
        ("baseline", 0.85), ("torch-pruning", 0.80), ("scratch", 0.82), ("scratch-aligned", 0.845),
        ("sandwich-pair-aligned", 0.843))]
    sentences = render_results.dom_row_sentences(rows, "resnet18", ("sandwich-pair-aligned",),
                                                 {"sandwich-pair-aligned": "scratch-aligned"})
    assert sentences == ["sandwich-pair-aligned: 84.30 % (points against baseline -0.70, torch-pruning +4.30, "
                         "scratch-aligned -0.20); misses the goal (0.20 points under scratch-aligned)."]


def test_a_dom_row_with_its_own_competitor_is_set_against_that_competitor():
    rows = [study_row("resnet18", name, top1, 0.497) for name, top1 in (
        ("baseline", 0.85), ("torch-pruning", 0.80), ("torch-pruning-mixed", 0.846), ("scratch-mixed", 0.82),
        ("sandwich-pair-mixed", 0.843))]
    sentences = render_results.dom_row_sentences(rows, "resnet18", ("sandwich-pair-mixed",),
                                                 {"sandwich-pair-mixed": "scratch-mixed"},
                                                 {"sandwich-pair-mixed": "torch-pruning-mixed"})
    assert sentences == ["sandwich-pair-mixed: 84.30 % (points against baseline -0.70, torch-pruning-mixed -0.30, "
                         "scratch-mixed +2.30); misses the goal (0.30 points under torch-pruning-mixed)."]


def test_the_walltime_competitor_is_part_of_the_goal_and_thin_stays_outside_it():
    rows = [study_row("vgg16", name, top1, 0.457) for name, top1 in (
        ("baseline", 0.85), ("torch-pruning", 0.80), ("scratch", 0.82), ("thin", 0.86),
        ("torch-pruning-walltime", 0.86), ("sandwich-pair", 0.845))]
    sentences = render_results.dom_row_sentences(rows, "vgg16", ("sandwich-pair",))
    # the walltime variant is the torch-pruning row too; thin is not in the goal
    assert sentences == ["sandwich-pair: 84.50 % (points against baseline -0.50, torch-pruning +4.50, scratch +2.50, "
                         "torch-pruning-walltime -1.50, thin -1.50); misses the goal (1.50 points under "
                         "torch-pruning-walltime)."]
    rows[4] = study_row("vgg16", "torch-pruning-walltime", 0.84, 0.457)
    assert render_results.dom_row_sentences(rows, "vgg16", ("sandwich-pair",))[0].endswith("thin -1.50); meets the goal.")


def test_a_goal_met_on_the_mean_names_the_seed_beyond_the_line():
    rows = {r["row"]: r for r in (
        study_row("vgg16", "baseline", 0, 1.0, s0=0.8442, s1=0.8549),
        study_row("vgg16", "torch-pruning", 0, 0.446, s0=0.8134, s1=0.8043),
        study_row("vgg16", "scratch", 0, 0.457, s0=0.8331, s1=0.8357),
        study_row("vgg16", "sandwich-pair", 0, 0.457, s0=0.8427, s1=0.8370))}
    check = study_dom.goal_check(rows["sandwich-pair"], rows)
    assert check["met"] and list(check["seeds_beyond"]) == [1]
    assert study_dom.goal_phrase(check) == ("meets the goal on the mean, not on every seed against the baseline "
                                            "(seed 1: -1.79)")
    over = dict(rows["sandwich-pair"], mac_ratio=0.51)
    assert study_dom.goal_check(over, rows)["shortfalls"] == ["over 0.5 of the baseline's MACs"]


def test_the_goal_sentence_is_reached_only_on_both_networks():
    units = []
    for model, (base, dom) in {"vgg16": (0.85, 0.845), "resnet18": (0.85, 0.83)}.items():
        for row, top1 in (("baseline", base), ("torch-pruning", 0.80), ("scratch", 0.82), ("sandwich-pair", dom)):
            units.append({"model": model, "row": row, "seed": 0, "test_top1": top1, "epochs": "10",
                          "macs": 1000 if row == "baseline" else 450, "params": 10})
    facts = study_dom.summary(units)
    sentence = render_results.goal_sentence(facts, study_dom.GOAL_POINTS, study_dom.BUDGET)
    assert not facts["goal_met"] and "**is not reached**" in sentence
    assert "resnet18 (sandwich-pair, 83.00 % against 85.00 %): misses the goal (2.00 points under the baseline, " \
           "1.00 beyond the 1-point line)" in sentence and "vgg16 (sandwich-pair, 84.50 % against 85.00 %): meets the goal" in sentence
    facts = study_dom.summary([u for u in units if u["model"] == "vgg16"])
    assert facts["goal_met"] and "**is reached**" in render_results.goal_sentence(facts, 1.0, 0.5)


def test_the_walltime_competitor_is_not_set_against_a_row_pruned_to_other_macs():
    rows = [study_row("resnet18", name, top1, 0.497) for name, top1 in (
        ("baseline", 0.85), ("torch-pruning-mixed", 0.80), ("scratch-mixed", 0.82),
        ("torch-pruning-walltime", 0.86), ("sandwich-pair-mixed", 0.845))]
    sentences = render_results.dom_row_sentences(rows, "resnet18", ("sandwich-pair-mixed",),
                                                 {"sandwich-pair-mixed": "scratch-mixed"},
                                                 {"sandwich-pair-mixed": "torch-pruning-mixed"})
    assert "walltime" not in sentences[0] and sentences[0].endswith("meets the goal.")


def test_rows_are_compared_seed_by_seed_over_the_seeds_both_have():
    rows = [study_row("vgg16", "baseline", 0, 1.0, s0=0.844, s1=0.830),  # seed 1 happened to do worse
            study_row("vgg16", "torch-pruning", 0, 0.45, s1=0.80),
            study_row("vgg16", "scratch", 0, 0.457, s0=0.833, s1=0.820),
            study_row("vgg16", "sandwich-pair", 0, 0.457, s0=0.8427)]
    sentences = render_results.dom_row_sentences(rows, "vgg16", ("sandwich-pair",))
    # against the baseline on seed 0 alone (not its two-seed mean, 83.70), and no seed shared with torch-pruning
    assert sentences == ["sandwich-pair: 84.27 % (points against baseline -0.13, scratch +0.97)."]
    rows[3] = study_row("vgg16", "sandwich-pair", 0, 0.457, s0=0.8427, s1=0.8371)  # its second seed lands
    sentences = render_results.dom_row_sentences(rows, "vgg16", ("sandwich-pair",))
    assert sentences == ["sandwich-pair: 83.99 % (points against baseline +0.29 ± 0.59, torch-pruning +3.71, "
                         "scratch +1.34 ± 0.52); meets the goal."]
