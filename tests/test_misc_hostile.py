"""Hostile inputs at the edges: node counts, rule receipts, YAML numbers, messages.

Each test names what it saw before its fix: a count that reached the SLURM
batch file, a receipt that crashed a load, `010` read as 8, a raw `{fact}`
placeholder in a refusal, advice that could not help, a `### Q` trained as
rejected text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlm_gen import rulecache, yamlsrc
from dlm_gen import rules as rules_module
from dlm_gen.errors import DlmError, RulesError
from dlm_gen.limits import limits
from dlm_gen.pipeline import read_document
from dlm_gen.plan import make_plans
from dlm_gen.resources import data_dir
from tests.conftest import EXAMPLES, plan_of, write_dlm

SMOL = {"base_model": "smollm2-135m"}


# --- node and process counts: one cap, every spelling ---------------------------------


def test_a_huge_node_count_in_a_target_name_is_refused_and_writes_nothing(tmp_path, cli):
    """Was: `#SBATCH --nodes=99999999999999999999999` written, exit 0."""
    path = write_dlm(tmp_path, SMOL)
    out = tmp_path / "out"
    target = "99999999999999999999999x8xh100"
    code, _, err = cli("render", path, "--target", target, "--sbatch", "--out", out)
    assert code == 1
    assert "--target: '99999999999999999999999x8xh100' spans more than 4096 nodes" in err
    assert "(rules/limits.yaml max_nodes)" in err
    assert not out.exists() or not list(out.iterdir())


def test_thousands_of_digits_are_a_short_located_error(tmp_path, cli):
    """Was: a traceback (Python reads at most 4300 digits)."""
    path = write_dlm(tmp_path, SMOL)
    code, _, err = cli("explain", path, "--target", "9" * 5000 + "x8xh100")
    assert code == 1 and "max_nodes" in err and len(err) < 600


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--nodes", "4097"),
        ("--nodes", "9" * 5000),
        ("--nodes", "1_2"),
        ("--nodes", " 2"),
        ("--processes", "65537"),
        ("--processes", "+2"),
        ("--gpus", "\u0661\u0662"),
    ],
)
def test_counts_are_ascii_digits_within_their_cap(tmp_path, cli, flag, value):
    """Was: `--gpus ١٢`, `--nodes 1_2`, ` 2`, `+2` read as numbers; 4097 nodes accepted."""
    path = write_dlm(tmp_path, SMOL)
    code, out, err = cli("explain", path, flag, value)
    assert code == 2 and out == ""
    assert f"argument {flag}" in err or f"argument --processes/{flag}" in err
    assert len(err) < 1000


def test_the_node_cap_holds_for_every_spelling(tmp_path, cli):
    path = write_dlm(tmp_path, SMOL)
    cap = limits()["max_nodes"]
    assert cli("explain", path, "--target", f"{cap}xcpu")[0] == 0
    assert cli("explain", path, "--target", "cpu", "--nodes", str(cap))[0] == 0
    assert cli("explain", path, "--target", f"{cap + 1}xcpu")[0] == 1
    assert cli("explain", path, "--target", f"{cap + 1}x(cpu)")[0] == 1
    assert cli("explain", path, "--target", "cpu", "--nodes", str(cap + 1))[0] == 2


def test_an_unknown_target_is_quoted_briefly(tmp_path, cli):
    """Was: a 120 KB target name echoed whole in the error."""
    path = write_dlm(tmp_path, SMOL)
    code, _, err = cli("explain", path, "--target", "h100" * 30_000)
    assert code == 1 and "unknown target 'h100h100" in err and len(err) < 1000


# --- the checked-rules receipt: it only ever skips work -------------------------------


@pytest.fixture
def tables(tmp_path, monkeypatch):
    """A copy of the shipped tables, and a cache directory of this test's own."""
    copy = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), copy)
    monkeypatch.setenv("DLM_GEN_CACHE_DIR", str(tmp_path / "cache"))
    rules_module.forget_loaded_rules()
    yield copy
    rules_module.forget_loaded_rules()


def fresh_load(directory: Path):
    rules_module.forget_loaded_rules()
    return rules_module.load_rules(directory)


def key_of(directory: Path) -> str:
    texts = [(f.name, f.read_text(encoding="utf-8")) for f in sorted(directory.glob("*.yaml"))]
    return rulecache.cache_key(texts)


def receipt_of(directory: Path) -> Path:
    return rulecache.cache_file(key_of(directory))


def test_a_directory_at_the_receipts_name_leaves_no_temporary_files(tables, tmp_path):
    """Was: one more temporary file in the cache directory per run."""
    receipt = receipt_of(tables)
    receipt.mkdir(parents=True)
    for _ in range(3):
        fresh_load(tables)
    assert [p.name for p in receipt.parent.iterdir()] == [receipt.name]


def test_a_forged_receipt_for_broken_tables_gives_the_located_error(tables):
    """Was: KeyError: 'id' (a traceback) instead of "broken rule tables"."""
    (tables / "corpus.yaml").write_text(
        "kind: rules\nid_prefix: corpus\nhit_policy: collect\n"
        "rules:\n  - when: {training.adapter: lora}\n    warn: 5\n"
    )
    key = key_of(tables)
    receipt = rulecache.cache_file(key)
    receipt.parent.mkdir(mode=0o700, parents=True)
    receipt.write_text(json.dumps({"format": rulecache.RECEIPT_FORMAT, "key": key}))
    assert rulecache.has_receipt(key)  # the forgery is one this user could write
    with pytest.raises(rules_module.RulesError, match="broken rule tables") as raised:
        fresh_load(tables)
    assert "rules/corpus.yaml:5: rules/0" in str(raised.value)


def test_a_receipt_others_could_have_written_is_not_trusted(tables, tmp_path):
    fresh_load(tables)
    receipt = receipt_of(tables)
    key = json.loads(receipt.read_text())["key"]
    assert rulecache.has_receipt(key)
    receipt.chmod(0o666)  # anyone may write it
    assert not rulecache.has_receipt(key)
    receipt.chmod(0o600)
    receipt.parent.chmod(0o777)  # a shared cache directory
    assert not rulecache.has_receipt(key)
    receipt.parent.chmod(0o700)
    elsewhere = tmp_path / "elsewhere.json"
    receipt.rename(elsewhere)
    receipt.symlink_to(elsewhere)  # a link can point at anyone's file
    assert not rulecache.has_receipt(key)


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch, tmp_path):
    """Was: XDG_CACHE_HOME=rel put the cache under the working directory."""
    monkeypatch.delenv("DLM_GEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert rulecache.cache_file("0" * 64).parent == tmp_path / ".cache" / "dlm-gen"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rulecache.cache_file("0" * 64).parent == tmp_path / "xdg" / "dlm-gen"


# --- YAML numbers: never read silently where YAML 1.1 and 1.2 disagree ----------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lora_r: 010", "training.lora_r: '010' is octal 8 to YAML 1.1 and 10 to YAML 1.2"),
        ("seed: 190:20:30", "training.seed: '190:20:30' is a base-60 number to YAML 1.1"),
        ("lora_r: 0x20", "training.lora_r: '0x20' is hexadecimal notation"),
        ("lora_r: 0o20", "training.lora_r: '0o20' is octal notation"),
        ("lora_r: 1_6", "training.lora_r: '1_6' is a number with underscores"),
        ("packing: yes", "training.packing: 'yes' is true to YAML 1.1 and text to YAML 1.2"),
        ("lora_r: 08", "training.lora_r: '08' is text to YAML 1.1 and 8 to YAML 1.2"),
    ],
)
def test_ambiguous_yaml_numbers_are_refused_at_their_line(tmp_path, cli, line, expected):
    """Was: `lora_r: 010` read as 8, `seed: 190:20:30` as 685230, `0x20` as 32, silently."""
    path = tmp_path / "doc.dlm"
    path.write_text(f"---\nbase_model: smollm2-135m\ntraining:\n  {line}\n---\nSome prose.\n")
    code, _, err = cli("explain", path, "--target", "cpu")
    assert code == 1
    assert f"{path}:4: {expected}" in err


def test_the_message_says_how_to_write_the_number():
    with pytest.raises(DlmError, match="write 685230, or quote it"):
        yamlsrc.load("seed: 190:20:30\n", "t.yaml")
    with pytest.raises(DlmError, match=r"write the number in decimal \(32\)"):
        yamlsrc.load("x: 0x20\n", "t.yaml")
    with pytest.raises(DlmError, match="YAML tag !!binary is not allowed"):
        yamlsrc.load("x: !!binary aGVsbG8=\n", "t.yaml")


def test_unambiguous_forms_still_read():
    value = yamlsrc.load(
        "a: 10\nb: 0\nc: -3\nd: 2e-4\ne: .5\nf: true\ng: '010'\nh: 2024-01-01\ni: 1.0\n", "t"
    ).value
    assert value == {
        "a": 10, "b": 0, "c": -3, "d": 2e-4, "e": 0.5, "f": True, "g": "010",
        "h": "2024-01-01", "i": 1.0,
    }  # fmt: skip


def test_every_shipped_table_and_example_still_loads(monkeypatch):
    monkeypatch.setenv("DLM_GEN_CACHE_DIR", "off")
    rules_module.forget_loaded_rules()
    try:
        rules = rules_module.load_rules()
    finally:
        rules_module.forget_loaded_rules()
    assert rules.rule("batch-does-not-fit")
    for example in sorted(EXAMPLES.glob("*.dlm")):
        assert read_document(example).rows, example


# --- messages: every placeholder names a fact; advice fits the plan -------------------


@pytest.mark.parametrize(
    ("training", "shown"),
    [
        ({"preference": {"method": "orpo", "loss_type": "ipo"}}, "loss_type ipo is a DPO loss"),
        ({"cpt": {"embed_warmup_steps": 10}}, "training.cpt.embed_warmup_steps is 10: dlm-gen"),
    ],
)
def test_placeholders_of_three_part_facts_are_filled(tmp_path, training, shown):
    """Was: the refusal printed `{training.preference.loss_type}` raw."""
    body = "x\n\n::preference::\n### Prompt\na\n### Chosen\nb\n### Rejected\nc\n"
    plan = plan_of(tmp_path, training, body=body)
    messages = " ".join(" ".join(r.message.split()) for r in plan.refusals)
    assert shown in messages and "{training." not in messages


@pytest.mark.parametrize(
    ("placeholder", "problem"),
    [
        ("{Training.lr_scheduler}", "'{Training.lr_scheduler}' is not a placeholder"),
        ("{training lr}", "'{training lr}' is not a placeholder"),
        ("{training.no_such_fact}", "unknown fact 'training.no_such_fact'"),
    ],
)
def test_a_placeholder_that_names_no_fact_is_refused_when_the_tables_load(
    tables, placeholder, problem
):
    table = tables / "format.yaml"
    text = table.read_text()
    table.write_text(text.replace("(lr_scheduler {training.lr_scheduler})", placeholder, 1))
    with pytest.raises(rules_module.RulesError, match="broken rule tables") as raised:
        fresh_load(tables)
    assert "rule format-cpt-dapt-schedule: " + problem in str(raised.value)


def refusal_of(tmp_path, frontmatter, target, body=None):
    path = write_dlm(tmp_path, frontmatter, *(() if body is None else (body,)))
    return [
        (r.id, " ".join(r.message.split()))
        for plan in make_plans(read_document(path), rules_module.load_rules(), target)
        for r in plan.refusals
    ]


def test_a_qlora_plan_that_does_not_fit_is_not_told_to_use_qlora(tmp_path):
    qlora = {"base_model": "llama-3.3-70b", "training": {"adapter": "qlora"}}
    [(rule, message)] = refusal_of(tmp_path, qlora, "t4")
    assert rule == "batch-does-not-fit-qlora"
    assert "use qlora" not in message and "--nodes N" in message
    body = "x\n\n::preference::\n### Prompt\na\n### Chosen\nb\n### Rejected\nc\n"
    small = {"base_model": "llama-3.1-8b", "training": {"adapter": "qlora"}}
    [(rule, message)] = refusal_of(tmp_path, small, "t4", body)
    assert rule == "batch-preference-does-not-fit-qlora" and "use qlora" not in message


def test_a_row_that_alone_overflows_a_device_is_told_to_shorten_not_to_add_nodes(tmp_path):
    """Was: "use qlora, ... or more nodes" for 44.6 GB of activations in one row."""
    long_rows = {"base_model": "qwen2.5-0.5b", "training": {"sequence_len": 32768}}
    [(rule, message)] = refusal_of(tmp_path, long_rows, "t4")
    assert rule == "batch-row-does-not-fit"
    assert "use a shorter sequence_len" in message and "--nodes N" not in message
    assert "more nodes do not help" in message


# --- the body: a heading of another section kind is not silently text ----------------


PREFERENCE_WITH_QA = """Some prose.

::preference::
### Prompt
Say hello.
### Chosen
Hello!
### Rejected
Go away.
### Q
Is this an instruction pair?
### A
It was trained as rejected text.
"""


def test_an_instruction_pair_inside_a_preference_section_is_refused_at_its_line(tmp_path, cli):
    """Was: the `### Q` / `### A` pair became part of the rejected text, silently."""
    path = write_dlm(tmp_path, SMOL, PREFERENCE_WITH_QA)
    code, _, err = cli("explain", path, "--target", "cpu")
    assert code == 1
    line = 3 + PREFERENCE_WITH_QA.splitlines().index("### Q") + 1
    assert f"{path}:{line}: '### Q' is a heading of ::instruction:: sections" in err


def test_a_preference_heading_inside_an_instruction_section_is_refused(tmp_path, cli):
    body = "::instruction::\n### Q\nHi?\n### A\nHello.\n### Rejected\nGo away.\n"
    path = write_dlm(tmp_path, SMOL, body)
    code, _, err = cli("explain", path, "--target", "cpu")
    assert code == 1 and f"{path}:9: '### Rejected' is a heading of ::preference::" in err


def test_such_a_heading_in_a_code_block_is_text(tmp_path):
    fenced = PREFERENCE_WITH_QA.replace("### Q\n", "```\n### Q\n").replace(
        "rejected text.\n", "rejected text.\n```\n"
    )
    path = write_dlm(tmp_path, SMOL, fenced)
    [row] = [r for r in read_document(path).rows if hasattr(r, "rejected")]
    assert "### Q" in row.rejected


def test_the_shipped_caps_of_this_slice_are_documented_numbers():
    caps = limits()
    assert caps["max_run_json_bytes"] == 16 * 2**20
    assert caps["max_nodes"] == 4096 and caps["max_processes_per_node"] == 65536
    assert caps["max_plot_points"] == 2000


@pytest.mark.parametrize("home", ["", "relhome", "/"])
def test_an_empty_relative_or_root_home_means_no_receipt_cache(monkeypatch, home):
    """Found by a hostile tester: HOME= put the receipt at /.cache/dlm-gen, and a
    relative HOME under the working directory."""
    monkeypatch.delenv("DLM_GEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", home)
    assert rulecache.cache_file("0" * 64) is None


def test_a_rules_directory_of_too_many_or_too_large_tables_is_refused_unread(tables, cli):
    """Found by a hostile tester: 500 hard links to one 4 MiB table read 2 GB into
    memory, then a MemoryError traceback; the caps bound the reading of the tables
    themselves, so they live in dlm_gen/files.py, not in a table."""
    from dlm_gen.files import MAX_TABLE_BYTES, MAX_TABLES, MAX_TABLES_BYTES

    pad = tables / "zz_pad.yaml"
    pad.write_text("# " + "x" * (MAX_TABLE_BYTES - 200) + "\n")
    for index in range(MAX_TABLES_BYTES // MAX_TABLE_BYTES + 1):
        (tables / f"zz_pad{index}.yaml").hardlink_to(pad)
    with pytest.raises(RulesError, match=r"add up to \d+ bytes; a rules directory holds at most"):
        fresh_load(tables)
    for path in tables.glob("zz_pad*.yaml"):
        path.unlink()
    for index in range(MAX_TABLES + 1):
        (tables / f"zz_{index}.yaml").write_text("kind: rules\n")
    with pytest.raises(
        RulesError, match=f"rule tables; a rules directory holds at most {MAX_TABLES}"
    ):
        fresh_load(tables)


def test_a_target_with_a_trailing_line_break_is_not_read_as_another(tmp_path, cli):
    """Found by a hostile tester: `$` matched before a final newline, so '2xcpu\\n' planned
    two nodes of cpu."""
    document = write_dlm(tmp_path, {"base_model": "smollm2-135m"})
    code, _, err = cli("explain", document, "--target", "2xcpu\n")
    assert code == 1 and "unknown target '2xcpu\\n'" in err, err
