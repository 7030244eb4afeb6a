"""`dlm-gen compare`: two runs of one corpus side by side, and the seed's verdict.

Reads the `run.json` each generated script writes. The figures are those a
DoRA-vs-LoRA decision needs; the verdict is a row of `rules/compare.yaml`
(keep LoRA unless DoRA's quality figure beats it by the threshold). Runs on
different rows are refused unless forced: their figures do not compare.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.errors import DlmError

# (label, how to read it from one adapter's run record, unit)
FIGURES = (
    ("adapter kind", lambda r: r["plan"]["adapter"], ""),
    ("rank", lambda r: r["settings"]["lora_r"] if r["plan"].get("peft", True) else None, ""),
    ("trainable parameters", lambda r: r["trainable_parameters"], ""),
    ("steps", lambda r: r["steps"], ""),
    ("final train loss", lambda r: r["final_train_loss"], ""),
    ("eval loss", lambda r: r["eval_loss"], ""),
    ("delta_kl (vs base, held-out)", lambda r: r.get("delta_kl"), ""),
    ("delta_js (vs base, held-out)", lambda r: r.get("delta_js"), ""),
    ("mean step time", lambda r: r.get("mean_step_seconds"), "s"),
    ("peak memory", lambda r: r["peak_memory_bytes"] / 2**20, "MiB"),
    ("wall time", lambda r: r["wall_seconds"], "s"),
)
METRICS = {
    "eval_loss": "eval loss",
    "final_train_loss": "final train loss",
    "delta_kl": "delta_kl (vs base, held-out)",
    "delta_js": "delta_js (vs base, held-out)",
}


@dataclass(frozen=True)
class Run:
    label: str  # what the user passed
    record: dict  # one adapter's entry in run.json


def load_run(given: str, adapter: str | None) -> Run:
    path = Path(given)
    if path.is_dir():
        path = path / "run.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        adapters = manifest["adapters"]
    except FileNotFoundError:
        raise DlmError.one(str(path), None, None, "no run.json here: run a script first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DlmError.one(str(path), None, None, f"not a dlm-gen run.json: {exc}") from None
    if not isinstance(adapters, list) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("plan"), dict)
        and "adapter" in entry["plan"]
        for entry in adapters
    ):
        raise DlmError.one(str(path), None, None, "not a dlm-gen run.json: no adapters with a plan")
    names = [entry.get("name") for entry in adapters]
    if adapter is None and len(adapters) == 1:
        return Run(given, adapters[0])
    if adapter in names:
        return Run(given, adapters[names.index(adapter)])
    choices = ", ".join(str(n) for n in names)
    raise DlmError.one(
        str(path), None, "--adapter", f"pick one adapter of this run with --adapter ({choices})"
    )


def figures(run: Run) -> dict[str, object]:
    values = {}
    for label, read, _ in FIGURES:
        try:
            values[label] = read(run.record)
        except (KeyError, TypeError):
            values[label] = None
    return values


def relative(a: object, b: object) -> float | None:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    if not numbers or a == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return (b - a) / abs(a)


def verdict(a: Run, b: Run, verdicts: tuple[dict, ...], threshold: float | None) -> dict:
    """Apply the first verdict row whose baseline/challenger kinds match the two runs."""
    kind = {run.label: run.record["plan"]["adapter"] for run in (a, b)}
    for row in verdicts:
        for baseline, challenger in ((a, b), (b, a)):
            if (
                kind[baseline.label] in row["baseline"]
                and kind[challenger.label] in row["challenger"]
            ):
                return _decide(row, baseline, challenger, threshold)
    return {
        "rule": None,
        "keep": None,
        "text": f"no verdict: no row of rules/compare.yaml compares "
        f"{kind[a.label]} with {kind[b.label]}",
    }


def _decide(row: dict, baseline: Run, challenger: Run, threshold: float | None) -> dict:
    limit = row["threshold"] if threshold is None else threshold
    label = METRICS[row["metric"]]
    base_value = figures(baseline)[label]
    challenger_value = figures(challenger)[label]
    base_kind = baseline.record["plan"]["adapter"]
    challenger_kind = challenger.record["plan"]["adapter"]
    change = relative(base_value, challenger_value)
    if change is None:
        return {
            "rule": row["id"],
            "keep": base_kind,
            "text": f"keep {base_kind}: {label} is missing in a run, so {challenger_kind} "
            "cannot show a gain",
        }
    gain = -change if row["better"] == "lower" else change
    wins = gain >= limit
    keep = challenger_kind if wins else base_kind
    comparison = "beats" if wins else "does not beat"
    return {
        "rule": row["id"],
        "keep": keep,
        "metric": row["metric"],
        "threshold": limit,
        "gain": gain,
        "text": (
            f"keep {keep}: {challenger_kind}'s {label} {challenger_value:.4g} vs "
            f"{base_kind}'s {base_value:.4g} is a {gain:+.1%} gain, which {comparison} the "
            f"{limit:.0%} threshold ({row['id']})"
        ),
    }


def check_same_rows(a: Run, b: Run, force: bool) -> list[str]:
    """Refuse (or, forced, warn about) runs whose rows differ."""
    digest_a, digest_b = a.record.get("rows_sha256"), b.record.get("rows_sha256")
    if digest_a == digest_b and digest_a is not None:
        return []
    why = (
        f"the runs trained on different rows ({str(digest_a)[:12]} vs {str(digest_b)[:12]}): "
        "their losses and divergences measure different data"
    )
    if not force:
        raise DlmError.one(a.label, None, None, f"{why}; compare twins of one corpus, or --force")
    return [f"warning: {why} (compared anyway: --force)"]


def table(a: Run, b: Run) -> list[dict[str, object]]:
    left, right = figures(a), figures(b)
    return [
        {
            "figure": label,
            "a": left[label],
            "b": right[label],
            "relative": relative(left[label], right[label]),
            "unit": unit,
        }
        for label, _, unit in FIGURES
    ]


def format_table(a: Run, b: Run, rows: list[dict[str, object]]) -> str:
    def show(value: object, unit: str) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}{' ' + unit if unit else ''}"
        return f"{value}{' ' + unit if unit else ''}"

    header = ("figure", f"A: {a.label}", f"B: {b.label}", "B vs A")
    lines = [
        (
            str(row["figure"]),
            show(row["a"], str(row["unit"])),
            show(row["b"], str(row["unit"])),
            "-" if row["relative"] is None else f"{row['relative']:+.1%}",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(4)]
    render = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(line)
        )
        for line in [header, *lines]
    ]
    return "\n".join([render[0], "  ".join("-" * w for w in widths), *render[1:]])


def plot(a: Run, b: Run, path: Path) -> None:
    """Both loss curves over steps as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise DlmError.one(
            "--plot",
            None,
            None,
            "needs matplotlib, which is not installed: pip install 'dlm-gen[plot]'",
        ) from None
    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    for run in (a, b):
        losses = run.record.get("losses") or []
        kind = run.record["plan"]["adapter"]
        axes.plot(range(1, len(losses) + 1), losses, label=f"{kind} ({run.label})")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title("training loss per step")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
