"""``report.md``: one page tying the tables and figures of an output folder together."""
import json


def _markdown_table(frame, digits=3):
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out, config, instructions, table, best, heatmaps):
    """Write ``out/report.md`` and return its path."""
    lines = [f"# Encoding report: {config['name']}", ""]
    if config.get("demo") is not None:
        lines += ["> **Embedded demo.** The movie is synthetic, the features come from fixed random networks "
                  "(not language models) and the fMRI responses are **simulated** with planted preferred "
                  "layers per ROI. Nothing here is a finding about the brain.", ""]
    lines += ["## What was asked", ""]
    lines += [f"- `{name}`: \"{prompt}\"" for name, prompt in instructions.items()]
    lines += ["", "## Data", "",
              f"- models: {', '.join(config['models'])}",
              f"- subjects: {', '.join(config['subjects'])}",
              f"- held-out test runs (scored only): {', '.join(map(str, config['test_runs']))}",
              f"- cross-validation inside the training runs: "
              f"{'leave one run out' if config['cv_folds'] is None else str(config['cv_folds']) + ' run-wise folds'}",
              f"- FIR delays (TRs): {config['delays']}; alphas: {len(config['alphas'])} from "
              f"{min(config['alphas']):.3g} to {max(config['alphas']):.3g}", "",
              "## Best layer per ROI", "",
              "Chosen by the mean cross-validated score inside the training runs; `mean_test_r` is the "
              "held-out score at that layer. Every layer's scores are in `alignment.csv`.", "",
              _markdown_table(best), ""]
    lines += ["## Layer x ROI maps", ""]
    lines += [f"![{name}]({name})" for name in heatmaps]
    flatmaps = sorted(p.name for p in out.glob("flatmap_*.png"))
    if flatmaps:
        lines += ["", "## Flatmaps: test r at each target's CV-best layer", ""]
        lines += [f"![{name}]({name})" for name in flatmaps]
    versions = json.loads((out / "versions.json").read_text())
    lines += ["", "## Files", "",
              "- `scores.h5`: per target and layer: test r, test R², CV score, chosen alpha (and per-band "
              "splits of joint fits)",
              "- `alignment.csv`: one row per (subject, model, instruction, layer, roi)",
              "- `best_layers.csv`: the table above",
              "- `config.yaml`, `versions.json`: what this ran with", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
