"""The DOM study's tables, goal and plot data, computed from its units (research/dom_study/)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "research" / "dom_study"))
import render  # noqa: E402  (a broken import fails, not skips)
import study_runs  # noqa: E402
import study_summary  # noqa: E402


def stat(mean: float, std: float = 0.0, n: int = 1) -> dict[str, float]:
    return {"mean": mean, "std": std, "n": n}


def study_row(model: str, name: str, top1: float, mac_ratio: float, **by_seed: float) -> dict:
    """A row of the study's table: seed 0 at ``top1`` unless seeds are given (``s0=..., s1=...``)."""
    seeds = {int(key[1:]): value for key, value in by_seed.items()} or {0: top1}
    return {"model": model, "row": name, "test_top1": stat(sum(seeds.values()) / len(seeds), n=len(seeds)),
            "top1_by_seed": seeds, "mac_ratio": mac_ratio}


def cells(lines: list[str], model: str, row: str) -> list[str]:
    """The cells after model and row of ``row``'s line in a markdown table."""
    line = next(x for x in lines if x.startswith(f"| {model} | {row} |"))
    return [c.strip() for c in line.strip("| ").split(" | ")][2:]


def test_each_dom_row_is_set_against_baseline_competitor_and_control():
    rows = [study_row("vgg16", name, top1, ratio) for name, top1, ratio in (
        ("baseline", 0.8442, 1.0), ("torch-pruning", 0.7960, 0.42), ("scratch", 0.8331, 0.457),
        ("sandwich-pair", 0.8427, 0.457), ("sandwich", 0.8208, 0.457))]
    lines = render.comparison_table(rows)
    # top-1, baseline, competitor, walltime (not run), control, thin (not run), goal
    assert cells(lines, "vgg16", "sandwich-pair") == ["84.27", "-0.15", "+4.67", "-", "+0.96", "-", "yes"]
    assert cells(lines, "vgg16", "sandwich") == ["82.08", "-2.34", "+2.48", "-", "-1.23", "-", "no"]
    alone = render.comparison_table(rows[:1] + rows[3:4])  # no verdict before the comparison rows exist
    assert cells(alone, "vgg16", "sandwich-pair") == ["84.27", "-0.15", "-", "-", "-", "-", "-"]


def test_a_dom_row_with_its_own_control_and_competitor_is_set_against_those():
    rows = [study_row("resnet18", name, top1, 0.497) for name, top1 in (
        ("baseline", 0.85), ("torch-pruning", 0.80), ("torch-pruning-mixed", 0.846), ("scratch", 0.82),
        ("scratch-mixed", 0.82), ("torch-pruning-walltime", 0.86), ("sandwich-pair-mixed", 0.843))]
    # the walltime competitor was pruned to other MACs: not set against the mixed DOM
    assert cells(render.comparison_table(rows), "resnet18", "sandwich-pair-mixed") == [
        "84.30", "-0.70", "-0.30 (torch-pruning-mixed)", "-", "+2.30 (scratch-mixed)", "-", "no"]


def test_the_walltime_competitor_is_part_of_the_goal_and_thin_stays_outside_it():
    rows = [study_row("vgg16", name, top1, 0.457) for name, top1 in (
        ("baseline", 0.85), ("torch-pruning", 0.80), ("scratch", 0.82), ("thin", 0.86),
        ("torch-pruning-walltime", 0.86), ("sandwich-pair", 0.845))]
    assert cells(render.comparison_table(rows), "vgg16", "sandwich-pair") == [
        "84.50", "-0.50", "+4.50", "-1.50", "+2.50", "-1.50", "no"]
    rows[4] = study_row("vgg16", "torch-pruning-walltime", 0.84, 0.457)
    assert cells(render.comparison_table(rows), "vgg16", "sandwich-pair")[-1] == "yes"  # thin -1.50 does not count


def test_rows_are_compared_seed_by_seed_over_the_seeds_both_have():
    rows = [study_row("vgg16", "baseline", 0, 1.0, s0=0.844, s1=0.830),  # seed 1 happened to do worse
            study_row("vgg16", "torch-pruning", 0, 0.45, s1=0.80),
            study_row("vgg16", "scratch", 0, 0.457, s0=0.833, s1=0.820),
            study_row("vgg16", "sandwich-pair", 0, 0.457, s0=0.8427)]
    # against the baseline on seed 0 alone (not its two-seed mean, 83.70), and no seed shared with torch-pruning
    assert cells(render.comparison_table(rows), "vgg16", "sandwich-pair")[:5] == ["84.27", "-0.13", "-", "-", "+0.97"]
    rows[3] = study_row("vgg16", "sandwich-pair", 0, 0.457, s0=0.8427, s1=0.8371)  # its second seed lands
    assert cells(render.comparison_table(rows), "vgg16", "sandwich-pair") == [
        "83.99", "+0.29 ± 0.59", "+3.71", "-", "+1.34 ± 0.52", "-", "yes"]


def test_a_goal_met_on_the_mean_names_the_seed_beyond_the_line():
    rows = {r["row"]: r for r in (
        study_row("vgg16", "baseline", 0, 1.0, s0=0.8442, s1=0.8549),
        study_row("vgg16", "torch-pruning", 0, 0.446, s0=0.8134, s1=0.8043),
        study_row("vgg16", "scratch", 0, 0.457, s0=0.8331, s1=0.8357),
        study_row("vgg16", "sandwich-pair", 0, 0.457, s0=0.8427, s1=0.8370))}
    check = study_summary.goal_check(rows["sandwich-pair"], rows)
    assert check["met"] and check["seeds_beyond"] == {1: pytest.approx(-1.79)}
    assert render.goal_cell(check) == "on the mean (seed 1 -1.79)"
    over = dict(rows["sandwich-pair"], mac_ratio=0.51)
    assert study_summary.goal_check(over, rows)["shortfalls"] == ["over 0.5 of the baseline's MACs"]
    assert render.goal_cell(study_summary.goal_check(over, rows)) == "no"


def test_the_goal_is_reached_only_on_both_networks():
    units = []
    for model, (base, dom) in {"vgg16": (0.85, 0.845), "resnet18": (0.85, 0.83)}.items():
        for row, top1 in (("baseline", base), ("torch-pruning", 0.80), ("scratch", 0.82), ("sandwich-pair", dom)):
            units.append({"model": model, "row": row, "seed": 0, "test_top1": top1, "epochs": "10",
                          "macs": 1000 if row == "baseline" else 450, "params": 10})
    facts = study_summary.summary(units)
    assert not facts["goal_met"]
    assert facts["models"]["vgg16"]["goal"]["met"] and not facts["models"]["resnet18"]["goal"]["met"]
    assert facts["models"]["resnet18"]["best_dom_gap_points"] == pytest.approx(2.0)
    assert study_summary.summary([u for u in units if u["model"] == "vgg16"])["goal_met"]


def test_the_plot_shows_every_row_against_macs_and_the_measured_ones_against_latency():
    table = [
        {"model": "vgg16", "row": "baseline", "test_top1": stat(0.84, 0.004, 2), "mac_ratio": 1.0,
         "latency_ratio_b32": None},
        {"model": "vgg16", "row": "sandwich", "test_top1": stat(0.82, 0.003, 2), "mac_ratio": 0.457,
         "latency_ratio_b32": stat(0.52, 0.01, 2)},
        {"model": "resnet18", "row": "scratch", "test_top1": stat(0.8), "mac_ratio": 0.46, "latency_ratio_b32": None},
        {"model": "vgg16", "row": "paper-ct", "test_top1": stat(0.42, 0.01, 2), "mac_ratio": 0.386,
         "latency_ratio_b32": stat(0.49, 0.02, 2)},
    ]
    shown = render.plot_points(table)
    assert shown["floor"] == pytest.approx(84 - 8) and shown["ceiling"] == pytest.approx(85)
    macs = {p["row"]: p for p in shown["points"]["mac_ratio"]}
    assert {row: p["x"] for row, p in macs.items()} == {"baseline": 1.0, "sandwich": 0.457, "scratch": 0.46,
                                                         "paper-ct": 0.386}
    assert macs["sandwich"]["y"] == pytest.approx(82) and macs["sandwich"]["y_err"] == pytest.approx(0.3)
    assert [row for row, p in macs.items() if p["below"]] == ["paper-ct"]  # drawn hollow on the floor
    latency = {p["row"]: p for p in shown["points"]["latency_ratio_b32"]}
    assert set(latency) == {"baseline", "sandwich", "paper-ct"}  # scratch has no latency yet; the baseline is 1
    assert (latency["baseline"]["x"], latency["sandwich"]["x"], latency["sandwich"]["x_err"]) == (1.0, 0.52, 0.01)
    unmeasured = render.plot_points([dict(r, latency_ratio_b32=None) for r in table])
    assert [p["row"] for p in unmeasured["points"]["latency_ratio_b32"]] == ["baseline"]
    pytest.importorskip("matplotlib")
    assert render.study_dom_plot(table).startswith(b"\x89PNG")  # the plot draws those points


def test_rendering_replaces_only_the_tables_between_the_markers():
    text = f"intro\n{render.BEGIN}\nold table\n{render.END}\nprose by hand\n"
    assert render.replace_block(text, ["| new |"]) == f"intro\n{render.BEGIN}\n| new |\n{render.END}\nprose by hand\n"
    with pytest.raises(SystemExit):
        render.replace_block("no markers", ["| new |"])


def test_the_committed_results_render_the_committed_tables():
    results = REPO / "research" / "dom_study" / "RESULTS.md"
    units = study_runs.load_units(REPO / "research" / "dom_study" / "results")
    block = results.read_text().split(render.BEGIN, 1)[1].split(render.END, 1)[0]
    assert block.strip("\n").splitlines() == render.tables(units)


def test_only_unit_files_are_read_as_units(tmp_path):
    unit = {"model": "tiny", "row": "baseline", "seed": 0}
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "baseline-seed0.json").write_text(json.dumps(unit))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "probe.json").write_text(json.dumps({"not": "a unit"}))  # other JSON kept in results/
    (tmp_path / "tiny" / "start-facts.json").write_text("{}")
    assert study_runs.load_units(tmp_path) == [unit]
