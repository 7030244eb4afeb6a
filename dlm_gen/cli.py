"""The `dlm-gen` command line: render, explain, check, schema, targets.

Exit codes: 0 ok; 1 the document is invalid or the plan is refused (every
problem on stderr with file, line and field; never a traceback); 2 usage.
Nothing here imports torch, transformers, peft or trl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from typing import IO, NoReturn

from dlm_gen import __version__
from dlm_gen.errors import DlmError, Problem, RulesError
from dlm_gen.shown import one_line
from dlm_gen.startup import skip_pydantic_plugin_discovery

skip_pydantic_plugin_discovery()  # before any model is built: dlm-gen uses no plugins


def _add_target_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--target", help="target profile (default: see `dlm-gen targets`)")
    command.add_argument(
        "--processes",
        "--gpus",
        type=_count("max_processes_per_node"),
        help="training processes per node, one per GPU (default: the target's GPU count)",
    )
    command.add_argument(
        "--nodes",
        type=_count("max_nodes"),
        help="machines the run spans, each with the target's GPUs (same as --target NxNAME)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with what it prints escaped like all other output: a usage error quotes
    the arguments as given (`unrecognized arguments: -\\x1b]0;...`), and a file name is
    input like any other. Subcommands' parsers are of this class too (argparse makes
    them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        from dlm_gen.shown import one_line

        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        from dlm_gen.literals import visible

        if message:
            with contextlib.suppress(AttributeError, OSError):  # as argparse: no stream
                (file or sys.stderr).write("\n".join(map(visible, message.split("\n"))))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dlm-gen",
        description="Turn a .dlm fine-tuning document into a reviewable training script.",
    )
    parser.add_argument("--version", action="version", version=f"dlm-gen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="write generated/train_<hash>.py for each document")
    render.add_argument("files", metavar="FILE.dlm", nargs="+")
    _add_target_options(render)
    render.add_argument("--out", default="generated", help="output directory (default: generated)")
    render.add_argument(
        "--sbatch",
        action="store_true",
        help="also write the SLURM batch file train_<hash>.sbatch beside the script",
    )

    check = commands.add_parser(
        "check", help="exit 1 if a rendered script is missing, stale or hand-edited"
    )
    check.add_argument("files", metavar="FILE.dlm", nargs="+")
    _add_target_options(check)
    check.add_argument("--out", default="generated", help="output directory (default: generated)")
    check.add_argument(
        "--sbatch",
        action="store_true",
        help="also check the SLURM batch file train_<hash>.sbatch beside the script",
    )

    explain = commands.add_parser("explain", help="print the plan and why it was chosen")
    explain.add_argument("file", metavar="FILE.dlm")
    _add_target_options(explain)
    output = explain.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument(
        "--verbose", "-v", action="store_true", help="show each decision and its rule"
    )

    compare = commands.add_parser(
        "compare", help="two runs side by side, and whether DoRA earns its step-time tax"
    )
    compare.add_argument("run_a", metavar="RUN_A", help="a run.json, or the directory holding it")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--adapter", help="the adapter to compare, for multi-adapter runs")
    compare.add_argument("--plot", metavar="FILE.png", help="write both loss curves as a PNG")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument(
        "--threshold",
        type=_threshold,
        help="gain the challenger needs, as a fraction (default: rules/compare.yaml)",
    )
    compare.add_argument(
        "--force", action="store_true", help="compare runs of different rows anyway"
    )

    diff = commands.add_parser(
        "diff", help="what changed in the plan and the rows between two scripts or documents"
    )
    diff.add_argument("old", metavar="OLD", help="a train_*.py, a .dlm, or REV:path (git)")
    diff.add_argument("new", metavar="NEW")
    _add_target_options(diff)
    diff_output = diff.add_mutually_exclusive_group()
    diff_output.add_argument("--json", action="store_true", help="print one JSON object")
    diff_output.add_argument(
        "--format", choices=("text", "md"), default="text", help="md: a pull-request comment"
    )

    doctor = commands.add_parser(
        "doctor", help="this host: matching target, GPUs, versions (imports torch)"
    )
    doctor.add_argument("file", metavar="FILE.dlm", nargs="?", help="also plan it for this host")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument(
        "--probe",
        action="store_true",
        help="re-measure the rows' evidence on this machine (dlm_gen/probes.py)",
    )

    commands.add_parser("schema", help="print the frontmatter JSON Schema")
    commands.add_parser("targets", help="list the target profiles")
    return parser


_DIGITS = re.compile(r"[0-9]+")
# A decimal number as a person types it: no nan, inf, 0x, 1_0 or non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _count(cap: str):
    """An argparse type: a whole number from 1 to the cap `cap` of rules/limits.yaml.

    The digits are bounded before int() reads them (Python refuses more than 4300).
    Where the caps table itself is broken the number passes here, and the command
    stops at the table with its located error (exit 1), not at the flag.
    """

    def count(text: str) -> int:
        if not _DIGITS.fullmatch(text):
            raise argparse.ArgumentTypeError(f"expected a whole number such as 2, got {text!r:.40}")
        from dlm_gen.limits import limits

        digits = text.lstrip("0") or "0"
        try:
            limit = limits()[cap]
        except RulesError:
            return int(digits[:20])
        if len(digits) > len(str(limit)) or not 1 <= int(digits) <= limit:
            raise argparse.ArgumentTypeError(
                f"must be between 1 and {limit} (rules/limits.yaml {cap})"
            )
        return int(digits)

    return count


def _threshold(text: str) -> float:
    """An argparse type: a gain as a fraction, in the range a verdict row's threshold
    may hold (schema/rules.schema.json); never nan or inf, which would print as a
    "nan% threshold" and as NaN in --json."""
    from dlm_gen.compare import threshold_bounds

    low, high = threshold_bounds()
    if len(text) > 40 or not _DECIMAL.fullmatch(text) or not low <= float(text) <= high:
        expected = f"expected a number from {low:g} to {high:g} (a fraction: 0.05 is 5%)"
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r:.40}")
    return float(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "nodes", None) is not None:
            from dlm_gen.resolve import with_nodes
            from dlm_gen.rules import load_rules

            args.target = with_nodes(args.target, args.nodes, load_rules())
        if args.command == "explain":
            return _explain(args)
        if args.command == "render":
            return _render(args)
        if args.command == "check":
            return _check(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "schema":
            return _schema()
        return _targets()
    except DlmError as exc:
        _print_problems(exc.problems)
        return 1
    except RulesError as exc:
        _print_error(f"dlm-gen: {exc}")
        return 1
    except OSError as exc:  # e.g. an output directory that cannot be written
        where = exc.filename or "dlm-gen"
        _print_error(f"error: {where}: {exc.strerror or exc}")
        return 1


def _say(text: object, file=None) -> None:
    """Print with every control and hidden character of the input escaped.

    Output echoes file names, fence lines, field values and run.json fields;
    none of them may move the cursor, recolour the terminal or forge a line.
    (JSON output needs no such care: json.dumps escapes them itself.)
    """
    from dlm_gen.literals import visible

    print("\n".join(visible(line) for line in str(text).split("\n")), file=file or sys.stdout)


def _print_error(text: str) -> None:
    _say(text, file=sys.stderr)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        _print_error(f"error: {one_line(str(problem))}")  # a break comes from the input


def _explain(args: argparse.Namespace) -> int:
    from dlm_gen.explain import explain_json, reason_lines, verbose_lines
    from dlm_gen.pipeline import plan_document

    planned = plan_document(args.file, args.target, args.processes)
    plans, rules = planned.plans, planned.rules
    if args.json:
        print(json.dumps(explain_json(plans, args.file, plans[0].target), indent=2))
    else:
        for plan, line in zip(plans, reason_lines(plans), strict=True):
            _say(line)
            if args.verbose:
                _say("\n".join(f"  {text}" for text in verbose_lines(plan, rules)))
    refused = planned.refusal_error()
    if refused:
        _print_problems(refused.problems)
        return 1
    return 0


def _render(args: argparse.Namespace) -> int:
    """Render every document in one process (the rules load once); a document that fails
    is reported with its location and the others are still written; exit 1 if any failed."""
    from pathlib import Path

    from dlm_gen.pipeline import document_failure, plan_document
    from dlm_gen.render import write_atomically
    from dlm_gen.rules import load_rules
    from dlm_gen.scripts import remove_replaced, remove_stale_temporaries
    from dlm_gen.shown import one_line

    out = Path(args.out)
    rules = load_rules()
    problems: list[Problem] = []
    written = []
    for file in args.files:
        try:
            planned = plan_document(file, args.target, args.processes, rules=rules, out_dir=out)
            path = write_atomically(out, planned.render(out), sbatch=args.sbatch)
        except Exception as exc:  # one document's failure never stops the others
            problems.extend(document_failure(file, exc))
            continue
        _say(one_line(str(path)))
        written.append(path)
    for older in remove_replaced(out, written):  # each document's previous script, same target
        removed = f"{one_line(str(older.path))} (an older render of {one_line(older.document)})"
        _say(f"removed {removed}", file=sys.stderr)
    remove_stale_temporaries(out)
    if problems:
        _print_problems(problems)
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dlm_gen.check import check_document

    problems = [
        p
        for file in args.files
        for p in check_document(file, Path(args.out), args.target, args.processes, args.sbatch)
    ]
    if problems:
        _print_problems(problems)
        return 1
    from dlm_gen.shown import one_line

    _say(f"{len(args.files)} document(s) in sync with {one_line(args.out)}/")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dlm_gen import compare
    from dlm_gen.limits import limits
    from dlm_gen.rules import load_rules

    a = compare.load_run(args.run_a, args.adapter)
    b = compare.load_run(args.run_b, args.adapter)
    notes = compare.check_same_rows(a, b, args.force)
    rows = compare.table(a, b)
    decided = compare.verdict(a, b, load_rules().verdicts, args.threshold)
    if args.plot:
        compare.plot(a, b, Path(args.plot), limits()["max_plot_points"])
    for note in notes:
        _say(note, file=sys.stderr)
    if args.json:
        data = {"a": args.run_a, "b": args.run_b, "figures": rows, "verdict": decided}
        print(json.dumps(compare.finite(data), indent=2, allow_nan=False))
        return 0
    _say(compare.format_table(a, b, rows))
    _say(f"\nverdict: {decided['text']}")
    if args.plot:
        _say(f"plot: {args.plot}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    """Exit 0: only the hash changed; 1: the plan or rows changed; 2: a side is unreadable."""
    from dlm_gen import diff
    from dlm_gen.rules import load_rules

    rules = load_rules()
    try:
        old = diff.load_side(args.old, rules, args.target, args.processes)
        new = diff.load_side(args.new, rules, args.target, args.processes)
    except DlmError as exc:
        _print_problems(exc.problems)
        return 2
    difference = diff.compare_sides(old, new, rules)
    if args.json:
        print(json.dumps(diff.to_json(difference), indent=2))
    elif args.format == "md":
        _say(diff.format_markdown(difference).rstrip("\n"))
    else:
        _say(diff.format_text(difference))
    return 1 if difference.changed else 0


def _doctor(args: argparse.Namespace) -> int:
    from dlm_gen import doctor
    from dlm_gen.rules import load_rules
    from dlm_gen.runtime.preflight import installed_versions

    rules = load_rules()
    host = doctor.detect_host(rules.targets)
    profile = doctor.matching_profile(host, rules.targets)
    report: dict[str, object] = {
        "profile": profile,
        "host": host,
        "versions": installed_versions(doctor.required_packages(rules)),
    }
    if profile is None:
        report["new_profile_yaml"] = doctor.new_profile_yaml(host)
    unmet = False
    if args.file:
        from dlm_gen.pipeline import plan_document
        from dlm_gen.plan import requirements_of

        plans = plan_document(args.file, profile or "host", rules=rules).plans
        status = doctor.requirement_status(requirements_of(plans))
        unmet = not all(item["met"] for item in status) or any(p.refused for p in plans)
        report["document"] = {
            "file": args.file,
            "reasons": [{"adapter": p.adapter_name, "reason": p.reason()} for p in plans],
            "refusals": [r.id for p in plans for r in p.refusals],
            "requirements": status,
        }
    if args.probe:
        from dlm_gen.probes import FAILS, run_probes

        report["probes"] = run_probes(rules)
        unmet = unmet or any(item["outcome"] == FAILS for item in report["probes"])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _say(doctor.format_report(report))
    return 1 if unmet else 0


def _schema() -> int:
    from dlm_gen.rules import load_rules

    print(load_rules().models().json_schema(), end="")
    return 0


def _targets() -> int:
    from dlm_gen.rules import load_rules

    rules = load_rules()
    for name, profile in rules.targets.items():
        marker = " (default)" if name == rules.default_target else ""
        gpu = profile["gpu"] or "host CPU"
        _say(f"{name:<10} {gpu}{marker}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
