"""The runtime of every generated training script: the code that runs a plan.

Each module does one job of a run (see `MODULES` for the order a script carries
them in). `dlm-gen render` appends their bodies verbatim below the script's
`main()` (dlm_gen/runtime_text.py), so the script runs without dlm-gen
installed; here they are ordinary modules that tests import, ruff lints and
editors follow.

Rules for these modules, checked by tests/test_runtime_package.py:
- they import nothing from the planning side of dlm-gen, only each other;
- at module level only the standard library (torch and the training stack are
  imported inside the functions that need them, after the preflight);
- imports come first, then the code; every top-level name is unique across the
  package, since the script holds them all in one namespace;
- no function reads a literal of the script: the plan, the rows and the rest
  arrive as arguments (a `Script`, a plan dict).
"""

# The order the script carries the modules in: what a reader meets first comes first.
MODULES = (
    "script",
    "console",
    "files",
    "flags",
    "rundir",
    "base",
    "preflight",
    "rows",
    "chat",
    "tokens",
    "packing",
    "data",
    "loading",
    "sft",
    "preference",
    "measure",
    "record",
    "prompt",
)
