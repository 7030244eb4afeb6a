"""`dlm-gen compare`: two runs of one corpus side by side, and the seed's verdict.

Reads the `run.json` each generated script writes. The figures are those a
DoRA-vs-LoRA decision needs; the verdict is a row of `rules/compare.yaml`
(keep LoRA unless DoRA's quality figure beats it by the threshold). Runs on
different rows are refused unless forced: their figures do not compare.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dlm_gen.errors import DlmError
from dlm_gen.files import InputFileError, read_bounded
from dlm_gen.limits import limits
from dlm_gen.resources import data_dir

# (label, how to read it from one adapter's run record, unit)
FIGURES = (
    ("adapter kind", lambda r: r["plan"]["adapter"], ""),
    ("rank", lambda r: _rank(r) if r["plan"].get("peft", True) else None, ""),
    ("trainable parameters", lambda r: r["trainable_parameters"], ""),
    ("steps", lambda r: r["steps"], ""),
    # Packed runs (rules/packing.yaml) take fewer steps for the same samples.
    ("packed", lambda r: {True: "yes", False: "no"}[r["packing"]["on"]], ""),
    ("tokens trained", lambda r: r.get("tokens_trained"), ""),
    ("padding tokens", lambda r: r.get("padding_tokens"), ""),
    ("final train loss", lambda r: r["final_train_loss"], ""),
    ("eval loss", lambda r: r["eval_loss"], ""),
    ("eval rows", lambda r: eval_rows(r)[0], ""),
    ("eval on", lambda r: eval_rows(r)[1], ""),
    ("delta_kl (vs base, held-out)", lambda r: r.get("delta_kl"), ""),
    ("delta_js (vs base, held-out)", lambda r: r.get("delta_js"), ""),
    ("median step time", lambda r: median_step_seconds(r), "s"),
    ("mean step time", lambda r: r.get("mean_step_seconds"), "s"),
    ("peak memory", lambda r: r["peak_memory_bytes"] / 2**20, "MiB"),
    ("wall time", lambda r: r["wall_seconds"], "s"),
    # The preference phase (none: "-"): on the held-out triples, after the phase.
    ("preference method", lambda r: r["preference"]["method"], ""),
    ("preference steps", lambda r: r["preference"]["steps"], ""),
    ("reward accuracy", lambda r: r["preference"]["reward_accuracy"]["after"], ""),
    ("reward margin", lambda r: r["preference"]["reward_margin"]["after"], ""),
    ("preference eval triples", lambda r: r["preference"]["eval_rows"], ""),
)


def eval_rows(record: dict) -> tuple[int | None, str | None]:
    """How many rows the eval loss was measured on, and which (held-out or training rows).

    Runs written before the planned split record `{"train", "eval"}` (held-out rows)."""
    rows = record.get("rows")
    if not isinstance(rows, dict):
        return None, None
    if "eval_on" in rows:
        held_out = rows.get("held_out") or 0
        return (held_out or rows.get("train")), rows["eval_on"]
    return rows.get("eval"), "held-out rows"


def median_step_seconds(record: dict) -> float | None:
    """The median step time: one contended step skews a mean (22.7 s mean vs ~1.5 s median)."""
    if record.get("median_step_seconds") is not None:
        return record["median_step_seconds"]
    seconds = record.get("step_seconds")
    if isinstance(seconds, list) and seconds and all(_finite(s) for s in seconds):
        return statistics.median(seconds)
    return None


def _rank(record: dict) -> object:
    """The LoRA rank: a plan field since the plan holds every value (older runs: settings)."""
    if "lora_r" in record["plan"]:
        return record["plan"]["lora_r"]
    return record["settings"]["lora_r"]


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


# Bounds of each figure a run.json may hold (None: may be missing). A value
# outside them is a broken or hand-made file, and would make a nonsense verdict.
RECORD_NUMBERS: dict[str, tuple[float, float]] = {
    "trainable_parameters": (0, 1e15),
    "steps": (0, 1e12),
    "tokens_trained": (0, 1e18),
    "padding_tokens": (0, 1e18),
    "final_train_loss": (0, 1e6),
    "eval_loss": (0, 1e6),
    "delta_kl": (0, 1e6),
    "delta_js": (0, 1.0),
    "mean_step_seconds": (0, 1e9),
    "median_step_seconds": (0, 1e9),
    "peak_memory_bytes": (0, 1e18),
    "wall_seconds": (0, 1e9),
}
# Per-step lists: the highest value each may hold, and what is expected.
RECORD_LISTS: dict[str, tuple[float, str]] = {
    "losses": (1e6, "a list of losses from 0 to 1e6"),
    "step_seconds": (1e9, "a list of step times in seconds"),
}
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# How a value that is not a figure is shown in a message: never whole.
_PREVIEW_CHARS = 40


def load_run(given: str, adapter: str | None) -> Run:
    path = Path(given)
    if path.is_dir():
        path = path / "run.json"
    file = str(path)
    caps = limits()
    try:
        raw = read_bounded(path, caps["max_run_json_bytes"])
        _check_containers(file, raw, caps["max_run_json_containers"])
        manifest = json.loads(raw, parse_constant=_no_constant)
    except InputFileError as exc:
        message = "no run.json here: run a script first" if "no such" in str(exc) else str(exc)
        if "the limit is" in message:
            message += " (rules/limits.yaml max_run_json_bytes)"
        raise DlmError.one(file, None, None, message) from None
    except RecursionError:
        raise DlmError.one(file, None, None, "not a dlm-gen run.json: nested too deeply") from None
    except ValueError as exc:
        raise DlmError.one(file, None, None, f"not valid JSON: {str(exc)[:120]}") from None
    adapters = manifest.get("adapters") if isinstance(manifest, dict) else None
    if not isinstance(adapters, list) or not adapters:
        raise DlmError.one(file, None, "adapters", "not a dlm-gen run.json: no adapters list")
    for index, entry in enumerate(adapters):
        _check_record(file, f"adapters[{index}]", entry)
    names = [entry.get("name") for entry in adapters]
    if adapter is None and len(adapters) == 1:
        return Run(given, adapters[0])
    if adapter in names:
        return Run(given, adapters[names.index(adapter)])
    choices = ", ".join(str(n) for n in names)
    raise DlmError.one(
        file, None, "--adapter", f"pick one adapter of this run with --adapter ({choices})"
    )


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a run can report")


def _check_containers(file: str, raw: bytes, cap: int) -> None:
    """Refuse, before parsing, a file of more objects and lists than a run writes.

    An empty object costs Python ~64 bytes per 3 bytes of file, so a file of
    `[{},{},...]` under the byte cap would parse into gigabytes. Counting the
    opening brackets (also those inside strings: an over-count only ever
    refuses earlier) bounds that at C speed.
    """
    count = raw.count(b"{") + raw.count(b"[")
    if count > cap:
        raise DlmError.one(
            file,
            None,
            None,
            f"not a dlm-gen run.json: more than {cap} objects and lists "
            "(rules/limits.yaml max_run_json_containers)",
        )


def preview(value: object) -> str:
    """A short, bounded description of any JSON value for a message (never the whole of it)."""
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return "a huge number"
    if isinstance(value, str) and len(value) > _PREVIEW_CHARS:
        value = value[: _PREVIEW_CHARS - 3] + "..."
    shown = json.dumps(value)
    return shown if len(shown) <= _PREVIEW_CHARS else shown[: _PREVIEW_CHARS - 3] + "..."


def _check_record(file: str, where: str, entry: object) -> None:
    """One adapter's record: the fields compare reads, each of the right type and range."""

    def fail(field: str, expected: str, got: object) -> DlmError:
        return DlmError.one(
            file, None, f"{where}.{field}", f"expected {expected}, got {preview(got)}"
        )

    if not isinstance(entry, dict):
        raise fail("", "an object", entry)
    plan = entry.get("plan")
    if not isinstance(plan, dict) or not isinstance(plan.get("adapter"), str):
        raise fail("plan.adapter", "an adapter kind", plan)
    if not _KIND.match(plan["adapter"]):
        raise fail("plan.adapter", "an adapter kind such as lora or dora", plan["adapter"])
    name = entry.get("name")
    if name is not None and not (isinstance(name, str) and _KIND.match(name)):
        raise fail("name", "an adapter name", name)
    for field, (low, high) in RECORD_NUMBERS.items():
        value = entry.get(field)
        if value is not None and not (_finite(value) and low <= value <= high):
            raise fail(field, f"a number from {low:g} to {high:g}", value)
    settings = entry.get("settings")
    for where_rank, rank in (
        ("plan.lora_r", plan.get("lora_r")),
        ("settings.lora_r", settings.get("lora_r") if isinstance(settings, dict) else None),
    ):
        if rank is not None and not (_finite(rank) and 0 < rank <= 1e6):
            raise fail(where_rank, "a rank from 1 to 1e6", rank)
    for field, (high, expected) in RECORD_LISTS.items():
        values = entry.get(field)
        if values is None:
            continue
        if not isinstance(values, list):
            raise fail(field, expected, values)
        bad = _first_outside(values, 0, high)
        if bad is not None:
            raise fail(f"{field}[{bad}]", f"a number from 0 to {high:g}", values[bad])
    rows = entry.get("rows")
    if rows is not None and not (
        isinstance(rows, dict)
        and all(
            isinstance(rows.get(key), int)
            and not isinstance(rows.get(key), bool)
            and 0 <= rows[key] <= 1e9
            for key in ("train", "held_out", "eval")
            if key in rows
        )
        and rows.get("eval_on") in (None, "held-out rows", "training rows")
    ):
        raise fail("rows", "row counts (train, held_out, eval_on)", rows)
    digest = entry.get("rows_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) <= 128):
        raise fail("rows_sha256", "a hex digest", digest)
    _check_preference(entry.get("preference"), fail)


# What a preference record's figures may hold: (low, high) per before/after pair.
PREFERENCE_PAIRS = {"reward_accuracy": (0.0, 1.0), "reward_margin": (-1e6, 1e6)}


def _check_preference(preference: object, fail) -> None:
    """The preference phase's record (absent or null without a phase)."""
    if preference is None:
        return
    if not isinstance(preference, dict) or preference.get("method") not in ("dpo", "orpo"):
        raise fail("preference.method", "dpo or orpo", preference)
    for field in ("steps", "eval_rows"):
        value = preference.get(field)
        if not (_finite(value) and isinstance(value, int) and 0 <= value <= 1e12):
            raise fail(f"preference.{field}", "a count from 0 to 1e12", value)
    for field, (low, high) in PREFERENCE_PAIRS.items():
        pair = preference.get(field)
        values = list(pair.values()) if isinstance(pair, dict) else [pair]
        if not isinstance(pair, dict) or not all(
            v is None or (_finite(v) and low <= v <= high) for v in values
        ):
            raise fail(
                f"preference.{field}", f"before/after numbers from {low:g} to {high:g}", pair
            )
    losses = preference.get("losses")
    if not isinstance(losses, list):
        raise fail("preference.losses", "a list of finite losses", losses)
    bad = _first_outside(losses, -1e6, 1e6)
    if bad is not None:
        raise fail(f"preference.losses[{bad}]", "a loss from -1e6 to 1e6", losses[bad])


def _first_outside(values: list, low: float, high: float) -> int | None:
    """The index of the first item that is not a finite number in [low, high], or None.

    The common case, a list of numbers in range, is checked by C-speed builtins
    (types, `min`, `max`); only a list that fails them is walked in Python. No
    NaN reaches here: the parser refuses it (parse_constant).
    """
    numbers = set(map(type, values)) <= {float, int}
    if numbers and (not values or (low <= min(values) and max(values) <= high)):
        return None
    for index, value in enumerate(values):
        if not (_finite(value) and low <= value <= high):
            return index
    return None


def _finite(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not isinstance(value, int) or abs(value) < 10**30)
        and math.isfinite(value)
    )


def figures(run: Run) -> dict[str, object]:
    values = {}
    for label, read, _ in FIGURES:
        try:
            values[label] = _scalar(read(run.record))
        except (KeyError, TypeError):
            values[label] = None
    return values


def _scalar(value: object) -> object:
    """A figure as the table shows it: a number, a short text or None, never a whole
    list or object (a field compare does not check could hold millions of items)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= _PREVIEW_CHARS:
        return value
    return preview(value)


def relative(a: object, b: object) -> float | None:
    """(b - a) / |a|, or None when either is missing or a is zero (no relative change),
    or when the ratio overflows (a denormal baseline): JSON has no infinity."""
    if not (_finite(a) and _finite(b)) or a == 0:
        return None
    change = (b - a) / abs(a)
    return change if math.isfinite(change) else None


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


def _too_little_evidence(row: dict, runs: tuple[Run, Run]) -> str | None:
    """Why the runs cannot carry a verdict under this row's minimums, or None."""
    for run in runs:
        kind = run.record["plan"]["adapter"]
        count, evaluated_on = eval_rows(run.record)
        if row.get("held_out_only") and evaluated_on != "held-out rows":
            return f"{kind}'s eval loss is measured on its training rows, not held-out ones"
        min_rows, min_steps = row.get("min_eval_rows", 0), row.get("min_steps", 0)
        if min_rows and (count is None or count < min_rows):
            return f"{kind} was evaluated on {count or 0} rows (the row needs {min_rows})"
        steps = run.record.get("steps")
        if min_steps and (not isinstance(steps, int) or steps < min_steps):
            return f"{kind} trained {steps} steps (the row needs {min_steps})"
    return None


def _decide(row: dict, baseline: Run, challenger: Run, threshold: float | None) -> dict:
    limit = row["threshold"] if threshold is None else threshold
    short = _too_little_evidence(row, (baseline, challenger))
    if short is not None:
        return {
            "rule": row["id"],
            "keep": None,
            "inconclusive": True,
            "text": f"inconclusive: {short} ({row['id']}); train longer or on more rows",
        }
    label = METRICS[row["metric"]]
    base_value = figures(baseline)[label]
    challenger_value = figures(challenger)[label]
    base_kind = baseline.record["plan"]["adapter"]
    challenger_kind = challenger.record["plan"]["adapter"]
    change = relative(base_value, challenger_value)
    if _finite(base_value) and _finite(challenger_value) and base_value == 0:
        return {
            "rule": row["id"],
            "keep": base_kind,
            "text": f"keep {base_kind}: its {label} is 0, so no relative gain by "
            f"{challenger_kind} ({challenger_value:.4g}) can be measured against it",
        }
    if change is None:
        why = (
            f"{label} is missing in a run"
            if not (_finite(base_value) and _finite(challenger_value))
            else f"{base_kind}'s {label} ({base_value:.4g}) is too small to measure a gain against"
        )
        return {
            "rule": row["id"],
            "keep": base_kind,
            "text": f"keep {base_kind}: {why}, so {challenger_kind} cannot show a gain",
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
            f"{limit * 100:.3g}% threshold ({row['id']})"
        ),
    }


def threshold_bounds() -> tuple[float, float]:
    """The gains a verdict row's threshold may hold (schema/rules.schema.json), which
    also bound `--threshold`: one range for the table and the flag."""
    schema = json.loads((data_dir("schema") / "rules.schema.json").read_text(encoding="utf-8"))
    verdict_row = schema["$defs"]["verdicts"]["properties"]["verdicts"]["items"]
    threshold = verdict_row["properties"]["threshold"]
    return float(threshold["minimum"]), float(threshold["maximum"])


def finite(value: object) -> object:
    """`value` with every NaN or infinity replaced by None: JSON has neither, and
    `--json` output is for machines that would choke on Python's `NaN`."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def check_same_rows(a: Run, b: Run, force: bool) -> list[str]:
    """Refuse (or, forced, warn about) runs whose rows differ."""
    digest_a, digest_b = a.record.get("rows_sha256"), b.record.get("rows_sha256")
    if digest_a == digest_b and digest_a is not None:
        return []
    why = (
        f"{a.label} and {b.label} trained on different rows ({str(digest_a)[:12]} vs "
        f"{str(digest_b)[:12]}): "
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


def plot(a: Run, b: Run, path: Path, max_points: int) -> None:
    """Both loss curves over steps as a PNG, each drawn from at most `max_points` points
    (rules/limits.yaml max_plot_points): a long run is shown as the mean loss of each
    stretch of steps, so the time and memory of a plot do not grow with the run."""
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
        steps, losses = downsample(run.record.get("losses") or [], max_points)
        kind = run.record["plan"]["adapter"]
        axes.plot(steps, losses, label=_plain_text(f"{kind} ({run.label})"))
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title("training loss per step")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png")
    plt.close(figure)
    _write_whole(path, image.getvalue())


def _plain_text(text: str) -> str:
    """A label matplotlib shows as written: hidden characters escaped, and '$' escaped so
    that a run's path or name is never parsed as mathtext (`r$\\foo{$` raised a parse
    error from inside matplotlib)."""
    from dlm_gen.literals import visible

    return visible(text).replace("$", r"\$")


def downsample(values: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """(steps, values) of at most `max_points` points: the values themselves (step 1, 2,
    ...) when few enough, else the mean of each of `max_points` equal stretches, placed
    at the stretch's middle step."""
    count = len(values)
    if count <= max_points:
        return [float(step) for step in range(1, count + 1)], list(values)
    steps, means = [], []
    for bucket in range(max_points):
        start, end = count * bucket // max_points, count * (bucket + 1) // max_points
        steps.append((start + 1 + end) / 2)
        means.append(math.fsum(values[start:end]) / (end - start))
    return steps, means


def _write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file beside it: a failure (a full
    disk, a directory at that name) leaves no half-written file."""
    if not path.parent.is_dir():  # --plot writes the one file it names, no directories
        raise DlmError.one("--plot", None, None, f"no directory '{path.parent}' to write into")
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), 0o644)  # an image anyone may read, as savefig made it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
