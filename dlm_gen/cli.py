"""The `dlm-gen` command line: explain and schema (render and check follow).

Exit codes: 0 ok; 1 the document is invalid or the plan is refused (every
problem on stderr with file, line and field; never a traceback); 2 usage.
Nothing here imports torch, transformers, peft or trl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# pydantic scans every installed distribution for plugins on first use, which
# costs more than the whole plan; dlm-gen uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from dlm_gen import __version__
from dlm_gen.errors import DlmError, Problem, RulesError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlm-gen",
        description="Turn a .dlm fine-tuning document into a reviewable training script.",
    )
    parser.add_argument("--version", action="version", version=f"dlm-gen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser("explain", help="print the plan and why it was chosen")
    explain.add_argument("file", metavar="FILE.dlm")
    explain.add_argument("--target", help="target profile (default: see `dlm-gen targets`)")
    output = explain.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument(
        "--verbose", "-v", action="store_true", help="show each decision and its rule"
    )

    commands.add_parser("schema", help="print the frontmatter JSON Schema")
    commands.add_parser("targets", help="list the target profiles")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "explain":
            return _explain(args)
        if args.command == "schema":
            return _schema()
        return _targets()
    except DlmError as exc:
        _print_problems(exc.problems)
        return 1
    except RulesError as exc:
        print(f"dlm-gen: {exc}", file=sys.stderr)
        return 1


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)


def _explain(args: argparse.Namespace) -> int:
    from dlm_gen.document import load_document
    from dlm_gen.explain import explain_json, reason_lines, verbose_lines
    from dlm_gen.plan import make_plans
    from dlm_gen.rules import load_rules

    rules = load_rules()
    document = load_document(args.file)
    plans = make_plans(document, rules, args.target)
    if args.json:
        print(json.dumps(explain_json(plans, args.file, plans[0].target), indent=2))
    else:
        for plan, line in zip(plans, reason_lines(plans), strict=True):
            print(line)
            if args.verbose:
                print("\n".join(f"  {text}" for text in verbose_lines(plan, rules)))
    refusals = [
        Problem(
            document.path,
            document.line_of(refusal.field) if refusal.field else document.frontmatter_line,
            refusal.field,
            f"refused ({refusal.id}"
            + (f", adapter {plan.adapter_name}" if plan.adapter_name else "")
            + f"): {' '.join(refusal.message.split())}",
        )
        for plan in plans
        for refusal in plan.refusals
    ]
    if refusals:
        _print_problems(refusals)
        return 1
    return 0


def _schema() -> int:
    from dlm_gen.schema import frontmatter_json_schema

    print(frontmatter_json_schema(), end="")
    return 0


def _targets() -> int:
    from dlm_gen.rules import load_rules

    rules = load_rules()
    for name, profile in rules.targets.items():
        marker = " (default)" if name == rules.default_target else ""
        gpu = profile["gpu"] or "host CPU"
        print(f"{name:<10} {gpu}{marker}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
