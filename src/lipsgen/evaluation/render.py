"""The evaluation report as documents: metrics (as ``evaluate`` computes them) and the names of the
plots it drew, rendered as ``report.md`` and ``report.html``. Renders only; computes nothing."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_output

__all__ = ["write_reports"]


def _summary_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    samples = metrics["samples"]
    key_observables = list(next(iter(samples.values()))["wasserstein"])[:4] if samples else []
    support = any(m["outside_support"] is not None for m in metrics["samples"].values())
    leak = any(m["outside_support"] for m in metrics["samples"].values())  # else AUC in support = AUC
    weighted = any(m.get("weights") for m in samples.values())
    header = (["sample", "model", "exact", "AUC", "mean |ΣE−√s|/med E", "mean |Σp|/med E"]
              + (["outside support"] if support else []) + (["AUC in support"] if leak else [])
              + (["integral (weights)", "ESS / event", "unweighting eff."] if weighted else [])
              + [f"W1 {k}" for k in key_observables]
              + [f"chi2/ndf {k} (truth {v['chi2_ndf']:.2f})" for k, v in metrics.get("truth_spectra", {}).items()]
              + [f"max |ln ratio| {k}" for k in key_observables])
    rows = []
    for name, m in metrics["samples"].items():
        model = "-" if m["model"] is None else str(m["model"])
        rows.append([name, model, "yes" if m["exact"] else "no", f"{m['auc']:.3f}",
                     f"{m['conservation']['energy']:.2e}", f"{m['conservation']['momentum']:.2e}"]
                    + ([_format(m["outside_support"], ".2%")] if support else [])
                    + ([_format(m["auc_in_support"], ".3f")] if leak else [])
                    + (_weight_cells(m.get("weights")) if weighted else [])
                    + [f"{m['wasserstein'][k][0]:.4f} ± {m['wasserstein'][k][1]:.4f}" for k in key_observables]
                    + [f"{v['chi2_ndf']:.2f}" for v in m["spectra"].values()]
                    + [f"{m['tails'][k]['max_log_ratio']:.2f}" for k in key_observables])
    return header, rows


def _weight_cells(weights: dict[str, float] | None) -> list[str]:
    if weights is None:
        return ["unweighted"] * 3
    return [f"{weights['integral']:.4g} ± {weights['integral_error']:.2g}", f"{weights['ess_per_event']:.3f}",
            f"{weights['unweighting_efficiency']:.3g}"]


def _format(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _md_cell(text: str) -> str:
    """A Markdown table cell: a literal | would end the cell."""
    return text.replace("|", "\\|")


def _html_text(text: str) -> str:
    """Escaped HTML, with Markdown `code` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def write_reports(out: Path, metrics: dict[str, Any], plots: list[str], trajectory_plots: list[str]) -> None:
    header, rows = _summary_rows(metrics)
    intro = (f"Truth: `{metrics['truth']}` ({metrics['n_truth']} events of {metrics['n_particles']} particles, "
             f"target {metrics['target']}). Classifier floor (truth against independent truth): "
             f"AUC {metrics['floor_auc']:.3f}. Wasserstein-1 distances are mean ± spread over "
             f"{metrics['batches']} batches; all distances per observable are in metrics.json.")
    # (heading, text, images): the same sections in Markdown and HTML
    sections: list[tuple[str, str, list[str]]] = []
    if rows:
        conservation = [p for p in plots if p == "conservation.png"]
        sections += [
            ("Energy-momentum conservation", "Violation per event: exact models sit at float64 rounding "
             "(or exactly zero), at every step of their trajectories; the p-space baselines do not.", conservation),
            ("Observables", "Normalised histograms with model / truth ratio panels; the grey band is the "
             "truth's statistical error.", [p for p in plots if p not in conservation]),
        ]
    if trajectory_plots:
        sections.append(("Along the reverse trajectory", "Each curve is one recorded state, from the noise end "
                         "(t = 1, uniform phase space) to the data end; dashed black is the truth.", trajectory_plots))
    md = ["# lipsgen evaluation report", "", intro, ""]
    if rows:
        md += ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    for heading, text, images in sections:
        md += ["", f"## {heading}", "", text, ""] + [f"![{p}]({p})" for p in images]
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    body = [f"<h1>lipsgen evaluation report</h1><p>{_html_text(intro)}</p>"]
    if rows:
        body.append("<table border='1' cellpadding='4'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                    + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                    + "</table>")
    for heading, text, images in sections:
        body.append(f"<h2>{html.escape(heading)}</h2><p>{_html_text(text)}</p>")
        body += [f"<img src='{p}' width='{960 if p == 'conservation.png' else 480}'>" for p in images]
    with atomic_output(out / "report.html") as tmp:
        tmp.write_text("<!doctype html><html><head><meta charset='utf-8'><title>lipsgen report</title></head><body>"
                       + "\n".join(body) + "</body></html>\n")
