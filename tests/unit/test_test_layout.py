"""The unit tests are the domain's, on the fakes: none of them imports moto or the emulator, directly or through
a helper. Tests that need moto are adapter or contract tests (tests/adapters, tests/emulator); tests that need the
whole local stack are integration tests. Allowed from the local package: reading template.yaml
(pcam_local.template) and the offline IAM checks (pcam_local.iam_check, iam_calls, iam_needs, iam_policies,
cross_account), which run no AWS stand-in."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
UNIT_TESTS = sorted((ROOT / "tests" / "unit").glob("test_*.py"))
ALLOWED_LOCAL = {
    "pcam_local",
    "pcam_local.template",
    "pcam_local.iam_needs",
    "pcam_local.iam_policies",
    "pcam_local.iam_check",
    "pcam_local.cross_account",
}


def is_emulator(module: str) -> bool:
    top = module.split(".")[0]
    return top == "moto" or (top == "pcam_local" and module not in ALLOWED_LOCAL)


def is_module(name: str) -> bool:
    """``from package import name``: whether it names a submodule (rather than a function or a constant)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def imported_names(path: Path) -> set[str]:
    """Every module an import statement of the file names, wherever the statement is (in a test, a fixture)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names if is_module(f"{node.module}.{alias.name}")}
    return names


def test_no_unit_test_names_moto_or_the_emulator():
    offenders = {path.name: sorted(filter(is_emulator, imported_names(path))) for path in UNIT_TESTS}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_unit_test_reaches_moto_or_the_emulator_through_what_it_imports():
    """Imported one by one in a fresh interpreter: the modules each one loads (helpers, fixtures' modules)."""
    probe = f"""
import importlib, sys
is_emulator = lambda m: m.split(".")[0] == "moto" or (m.split(".")[0] == "pcam_local" and m not in {ALLOWED_LOCAL!r})
for name in {[path.stem for path in UNIT_TESTS]!r}:
    before = set(sys.modules)
    importlib.import_module("tests.unit." + name)
    for module in sorted(set(sys.modules) - before):
        if is_emulator(module):
            print(name, module)
"""
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.splitlines() == []


def test_the_check_sees_an_emulator_import(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import numpy\nfrom moto import mock_aws\n\ndef test():\n    from pcam_local import runtime\n")
    assert sorted(filter(is_emulator, imported_names(sample))) == ["moto", "pcam_local.runtime"]


def test_every_test_file_the_mutation_plan_names_exists_in_one_test_folder():
    """`make mutation` runs each module's mutants against test files named in MUTATION_PLAN (found in tests/unit,
    adapters or emulator): a file moved or renamed would leave its mutants untested, or every one "killed"."""
    makefile = (ROOT / "Makefile").read_text()
    plan = makefile.split("MUTATION_PLAN :=", 1)[1].split("\nMODULES", 1)[0].replace("\\\n", " ").split()
    named = {test for item in plan for test in item.split(":", 1)[1].split(",")}
    assert len(named) > 10
    folders = [ROOT / "tests" / folder for folder in ("unit", "adapters", "emulator")]
    found = {test: [f.name for f in folders if (f / test).is_file()] for test in named}
    assert {test: where for test, where in found.items() if len(where) != 1} == {}
