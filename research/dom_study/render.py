"""Write the DOM study's tables into research/dom_study/RESULTS.md, and its plot, from the unit JSON.

Only the part of RESULTS.md between the two table markers is written here (tables and a list of the
units still missing); what the figures mean is written by hand around it.

    python research/dom_study/render.py [--results-dir research/dom_study/results]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import study_rows
import study_runs
import study_summary

from wascompress.fileio import atomic_write_bytes, atomic_write_text

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- tables: written by render.py -->", "<!-- end of tables -->"


def _pm(cell: dict[str, float] | None, scale: float = 100, digits: int = 2) -> str:
    if not cell:
        return "-"
    return f"{cell['mean'] * scale:.{digits}f} ± {cell['std'] * scale:.{digits}f}"


def _minutes(row: dict[str, Any]) -> str:
    """A row's training time: the quiet estimate, with the wall time in brackets."""
    wall = f"{row['train_wall_s']['mean'] / 60:.0f}"
    quiet = row.get("train_quiet_s")
    return f"{quiet['mean'] / 60:.0f} ({wall})" if quiet else f"- ({wall})"


def _points(difference: dict[str, float] | None) -> str:
    if difference is None:
        return "-"
    return f"{difference['mean']:+.2f}" + (f" ± {difference['std']:.2f}" if difference["n"] > 1 else "")


def main_table(units: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """Every model x row: accuracy, MACs, parameters, latency and training time."""
    lines = [f"- Machine: {units[0]['machine']}",
             f"- Dates: {min(u['date'] for u in units)} to {max(u['date'] for u in units)}", "",
             "| model | row | epochs | test top-1 % (n) | AOM top-1 % | MACs (M) | x baseline MACs | params (k) | "
             "latency b1 | latency b32 | training min, quiet (wall) |",
             "| --- " * 11 + "|"]
    for row in table:
        ratio = lambda key: _pm(row.get(key), 1, 3) if row.get(key) else "-"  # noqa: E731
        if row["mac_ratio"] is None:
            lines.append(f"| {row['model']} | {row['row']} | {row['epochs']} | {_pm(row['test_top1'])} |"
                         + " - |" * 7)
            continue
        lines.append(
            f"| {row['model']} | {row['row']} | {row['epochs']} | {_pm(row['test_top1'])} ({row['test_top1']['n']}) | "
            f"{_pm(row['aom_test_top1']) if row.get('aom_test_top1') else '-'} | {row['macs']['mean'] / 1e6:.1f} | "
            f"{row['mac_ratio']:.3f} | {row['params']['mean'] / 1e3:.0f} | {ratio('latency_ratio_b1')} | "
            f"{ratio('latency_ratio_b32')} | {_minutes(row)} |")
    return lines


def goal_cell(check: dict[str, Any] | None) -> str:
    """A goal check as a table cell: yes, yes on the mean (the seeds beyond the line), no, or - (not all
    comparison rows have finished)."""
    if check is None:
        return "-"
    if not check["met"]:
        return "no"
    beyond = ", ".join(f"seed {seed} {points:+.2f}" for seed, points in check["seeds_beyond"].items())
    return f"on the mean ({beyond})" if beyond else "yes"


def comparison_table(table: list[dict[str, Any]]) -> list[str]:
    """Each DOM row against the baseline, its torch-pruning competitor (at equal epochs and, for the
    rows pruned to ``sandwich``'s MACs, at equal training time), its own net trained alone and the
    thinner network, in points paired by seed; and whether it meets the goal (``study_summary.goal_check``)."""
    lines = ["| model | DOM row | top-1 % | vs baseline | vs competitor (equal epochs) | vs torch-pruning-walltime | "
             "vs control (same net alone) | vs thin | goal |", "| --- " * 9 + "|"]
    for model in dict.fromkeys(r["model"] for r in table):
        rows = {r["row"]: r for r in table if r["model"] == model}
        for name in (r for r in rows if r in study_rows.DOM_ROWS):
            row = rows[name]
            control = study_rows.CONTROLS.get(name, "scratch")
            competitor = study_rows.COMPETITORS.get(name, "torch-pruning")
            walltime = "torch-pruning-walltime" if competitor == "torch-pruning" else None
            cells = [_points(study_summary.paired_difference(row, rows[other])) if other in rows else "-"
                     for other in ("baseline", competitor, walltime, control, "thin")]
            cells[1] += f" ({competitor})" if competitor != "torch-pruning" and cells[1] != "-" else ""
            cells[3] += f" ({control})" if control != "scratch" and cells[3] != "-" else ""
            check = study_summary.goal_check(row, rows, control, competitor)
            lines.append(f"| {model} | {name} | {row['test_top1']['mean'] * 100:.2f} | " + " | ".join(cells)
                         + f" | {goal_cell(check)} |")
    return lines


def pretrained_tables(units: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[str]:
    """The from-trained rows against the baseline and torch-pruning (points paired by seed), and the
    multi-budget run budget by budget against torch-pruning pruned to its MACs."""
    rows = [r for r in table if r["row"] in study_rows.PRETRAINED_ROWS]
    if not rows:
        return []
    lines = ["", "| model | from-trained row | epochs | top-1 % | x baseline MACs | vs baseline | vs torch-pruning |",
             "| --- " * 7 + "|"]
    for row in rows:
        by = {r["row"]: r for r in table if r["model"] == row["model"]}
        cells = [_points(study_summary.paired_difference(row, by[other])) if other in by else "-"
                 for other in ("baseline", "torch-pruning")]
        lines.append(f"| {row['model']} | {row['row']} | {row['epochs']} | {row['test_top1']['mean'] * 100:.2f} | "
                     f"{row['mac_ratio']:.3f} | " + " | ".join(cells) + " |")
    multi = [u for u in units if u["row"] == "pretrained-multi"]
    if multi:
        lines += ["", "| model | seed | budget | DOM top-1 % | DOM MACs (M) | DOM latency b32 | torch-pruning top-1 % | "
                  "DOM vs torch-pruning | torch-pruning latency b32 |", "| --- " * 9 + "|"]
    latency = lambda b: f"{b['latency_ratio_b32']:.2f}" if "latency_ratio_b32" in b else "-"  # noqa: E731
    for unit in multi:
        pruned = next((u for u in units if u["model"] == unit["model"] and u["seed"] == unit["seed"]
                       and u["row"] == "torch-pruning-multi"), None)
        theirs = {b["target"]: b for b in pruned["budgets"]} if pruned else {}
        for budget in unit["budgets"]:
            other = theirs.get(budget["target"])
            cells = ([f"{other['test_top1'] * 100:.2f}", f"{(budget['test_top1'] - other['test_top1']) * 100:+.2f}",
                      latency(other)] if other else ["-", "-", "-"])
            lines.append(f"| {unit['model']} | {unit['seed']} | {budget['target']:g} | {budget['test_top1'] * 100:.2f} | "
                         f"{budget['macs'] / 1e6:.1f} | {latency(budget)} | " + " | ".join(cells) + " |")
    return lines


def missing_units(units: list[dict[str, Any]], models: list[str]) -> list[str]:
    """The default units not finished yet (model row seed)."""
    done = {(u["model"], u["row"], u["seed"]) for u in units}
    return [f"{model} {row} seed {seed}" for model in models for seed in study_rows.default_seeds(model)
            for row in study_rows.DEFAULT_ROWS if (model, row, seed) not in done]


ROW_MARKERS = {"baseline": "s", "sandwich": "o", "sandwich-ft": "D", "scratch": "^", "torch-pruning": "v",
               "torch-pruning-walltime": "<", "paper-crop": "x", "paper-ct": "+", "sandwich-pair": "P",
               "sandwich-pair-aligned": "*", "scratch-aligned": ">", "sandwich-pair-mixed": "X",
               "scratch-mixed": "h", "torch-pruning-mixed": "1", "thin": "d"}
PLOT_AXES = (("mac_ratio", "MACs (x baseline, exported graph)"),
             ("latency_ratio_b32", "ONNX Runtime CPU latency, batch 32 (x baseline)"))


def plot_points(table: list[dict[str, Any]]) -> dict[str, Any]:
    """What the study's plot shows: the accuracy axis (``floor``, ``ceiling``: the band around the
    baselines) and, per x axis (``mac_ratio``, ``latency_ratio_b32``), one point per row that has that
    cost: x (as a fraction of the baseline's; the baseline at 1), its error, top-1 % and its std, and
    ``below`` for a row under the floor (drawn on it, hollow)."""
    baselines = [r["test_top1"]["mean"] * 100 for r in table if r["row"] == "baseline"]
    tops = [r["test_top1"]["mean"] * 100 for r in table]
    floor = min(baselines) - 8 if baselines else min(tops) - 1
    points: dict[str, list[dict[str, Any]]] = {}
    for key, _ in PLOT_AXES:
        points[key] = []
        for row in table:
            value = row.get(key)
            if value is None and row["row"] == "baseline":
                value = 1.0  # the reference of both axes
            if value is None:
                continue
            x, x_err = (value, 0.0) if isinstance(value, float) else (value["mean"], value["std"])
            y = row["test_top1"]["mean"] * 100
            points[key].append({"model": row["model"], "row": row["row"], "n": row["test_top1"]["n"], "x": x,
                                "x_err": x_err, "y": y, "y_err": row["test_top1"]["std"] * 100, "below": y < floor})
    return {"floor": floor, "ceiling": max(tops) + 1, "points": points}


def study_dom_plot(table: list[dict[str, Any]]) -> bytes:
    """Pareto plot of :func:`plot_points`: test top-1 against MACs and against measured latency (batch
    32), one marker per row, error bars over seeds, one colour per model; a row below the accuracy band
    sits on the axis's floor, hollow, with its accuracy written beside it."""
    from wascompress.plotting import png_bytes, pyplot

    shown = plot_points(table)
    floor = shown["floor"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2), sharey=True)
    colours = dict(zip(sorted({r["model"] for r in table}), ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, (key, label) in zip(axes, PLOT_AXES):
        under = []
        for p in shown["points"][key]:
            style = dict(marker=ROW_MARKERS.get(p["row"], "o"), color=colours[p["model"]], markersize=7,
                         capsize=3, linestyle="none", label=f"{p['model']} {p['row']} (n={p['n']})")
            if p["below"]:
                ax.errorbar(p["x"], floor + 0.4, xerr=p["x_err"] or None, markerfacecolor="none", **style)
                under.append(f"{p['model']} {p['row']}: {p['y']:.1f} %")
            else:
                ax.errorbar(p["x"], p["y"], yerr=p["y_err"], xerr=p["x_err"] or None, **style)
        if under:
            ax.text(0.98, 0.03, "hollow, below the axis:\n" + "\n".join(under), transform=ax.transAxes, fontsize=7,
                    ha="right", va="bottom")
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        if not shown["points"][key]:
            ax.text(0.5, 0.5, "not measured yet (study.py --latency)", transform=ax.transAxes, ha="center")
    axes[0].set_ylim(floor, shown["ceiling"])
    axes[0].set_ylabel("test top-1 % (mean ± std over seeds)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle("DOM study, CIFAR-10, width 0.25: accuracy against cost (dotted: the 0.5 MAC budget)")
    return png_bytes(fig)


def tables(units: list[dict[str, Any]]) -> list[str]:
    """The generated block of RESULTS.md."""
    facts = study_summary.summary(units)
    lines = main_table(units, facts["table"])
    lines += ["", *comparison_table(facts["table"]), *pretrained_tables(units, facts["table"])]
    missing = missing_units(units, list(facts["models"]))
    if missing:
        lines += ["", f"Units not finished: {', '.join(missing)}."]
    return lines


def replace_block(text: str, block: list[str]) -> str:
    """``text`` with the part between the table markers replaced by ``block``."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"error: RESULTS.md has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    return head + "\n".join([BEGIN, *block, END]) + rest.split(END, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=HERE / "results", help="the unit JSON")
    args = parser.parse_args()
    units = study_runs.load_units(args.results_dir)
    if not units:
        raise SystemExit(f"error: no unit JSON under {args.results_dir}")
    results = HERE / "RESULTS.md"
    atomic_write_text(results, replace_block(results.read_text(), tables(units)))
    atomic_write_bytes(HERE / "study_dom.png", study_dom_plot(study_summary.summary(units)["table"]))
    print(f"wrote {results} and {HERE / 'study_dom.png'}")


if __name__ == "__main__":
    main()
