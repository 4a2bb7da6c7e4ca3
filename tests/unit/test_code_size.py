"""The code stays in pieces a reader can hold: no module over 250 lines, no class over 150 (the layout issue's
limits), in the Lambda code, the training code, the local stack and the benchmarks."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
FOLDERS = ("shared", "functions", "training", "local", "bench")
MAX_MODULE_LINES, MAX_CLASS_LINES = 250, 150


def sources() -> list[Path]:
    return sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py") if "build" not in path.parts)


def test_no_module_is_over_the_limit():
    lines = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines()) for path in sources()}
    assert {name: count for name, count in lines.items() if count > MAX_MODULE_LINES} == {}


def test_no_class_is_over_the_limit():
    too_long = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long[f"{path.relative_to(ROOT).as_posix()}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert too_long == {}


def test_the_sources_are_found():
    assert len(sources()) > 100 and ROOT / "local" / "pcam_local" / "runtime.py" in sources()
