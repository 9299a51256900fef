"""The layout keeps its promises: imports go down the floors of docs/architecture.md only, analysis runs without torch,
no function is longer than a screen (60 lines) but eq. 14's root finding."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import smoothcert

PACKAGE = Path(smoothcert.__file__).parent
ARCHITECTURE = Path(__file__).parents[1] / "docs" / "architecture.md"


def _floors() -> dict[str, int]:
    """The floor of each part of the package, read from the table of docs/architecture.md (the
    one numbering): rows ``| 3 | `models/` | ...``."""
    floors = {}
    for line in ARCHITECTURE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit() and cells[1].startswith("`"):
            floors[cells[1].strip("`").removesuffix("/").removesuffix(".py")] = int(cells[0])
    return floors


FLOORS = _floors()
"""The floor of each part of the package; a part imports only lower floors."""


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] not in ("__init__", "__main__"):
            yield path, parts


def _imported(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smoothcert."):
            yield node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            yield from (alias.name.split(".")[1] for alias in node.names if alias.name.startswith("smoothcert."))


def test_every_part_of_the_package_has_a_floor():
    assert {parts[0].removesuffix(".py") for _, parts in _modules()} == set(FLOORS)


def test_imports_go_down_the_floors_only():
    upward = []
    for path, parts in _modules():
        for target in _imported(ast.parse(path.read_text())):
            if target != parts[0] and FLOORS[target] >= FLOORS[parts[0]]:
                upward.append(f"{'/'.join(parts)} imports smoothcert.{target}")
    assert upward == []


def test_no_function_is_longer_than_a_screen_but_eq_14s_root_finding():
    long = []
    for path, parts in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{'/'.join(parts)}.{node.name}")
    assert long == ["statistics/bounds.pb_upper"]


def test_analyze_runs_where_torch_cannot_be_imported(tmp_path):
    results = tmp_path / "cert.tsv"
    results.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0.1\n1\t2\t-1\t0.0\t0\t0.1\n")
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is not available here")
        sys.meta_path.insert(0, NoTorch())
        from smoothcert.cli import main
        code = main(["analyze", {str(results)!r}, "--out-dir", {str(tmp_path / "out")!r}, "--radii", "0", "0.5"])
        print("exit", code, "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "exit 0 False" in done.stdout
    assert "| cert | 0.500 | 0.500 |" in done.stdout
    assert (tmp_path / "out" / "analysis.csv").is_file()
