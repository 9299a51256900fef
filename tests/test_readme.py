import importlib
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    guide = re.findall(r"```python\n(.*?)```", (README.parent / "docs" / "guide" / "python.md").read_text(), flags=re.S)
    assert guide and guide[0] == blocks[0], "the Python API guide opens with the README's example, which this test runs"
    again = "\nassert smoothed.certify(x, n0=100, n=10_000, alpha=0.001, batch_size=1000, seed=0) == cert  # the same call, the same certificate\n"
    out = subprocess.run([sys.executable, "-c", blocks[0] + again], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split("\n")[:2]
    label, radius = int(first.split()[0]), float(first.split()[1])
    assert -1 <= label < 10 and radius >= 0 and (radius == 0 or label >= 0)
    t_label, t_radius, alpha_prime, level = second.split()
    assert -1 <= int(t_label) < 10 and float(t_radius) >= 0 and 0 < float(alpha_prime) <= float(level) <= 0.001


def _resolves(name: str) -> bool:
    """Whether the dotted name is a module, or an attribute reached from the longest importable prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_dotted_name_in_the_docs_and_docstrings_resolves():
    """README, the Markdown pages under docs/ (the guides in docs/guide/ among them) and the
    package's docstrings name things as ``smoothcert.a.b``: each must exist (a renamed function or
    module fails here, not in a reader's hands)."""
    root = README.parent
    pages = sorted((root / "docs").rglob("*.md"))
    assert root / "docs" / "guide" / "python.md" in pages and root / "docs" / "api.md" in pages
    texts = {path: path.read_text() for path in [README, *pages]}
    names = {(path, name) for path, text in texts.items() for name in re.findall(r"\b(smoothcert(?:\.[A-Za-z_]\w*)+)", text)}
    for path in sorted((root / "src").rglob("*.py")):
        names |= {(path, name) for name in re.findall(r"`~?(smoothcert(?:\.[A-Za-z_]\w*)+)`", path.read_text())}
    assert len(names) > 50
    broken = sorted(f"{path.relative_to(root)}: {name}" for path, name in names if not _resolves(name))
    assert not broken, broken


def test_the_readme_is_a_front_page():
    """It opens with the two commands (install and run the demo; run the tests), fits on about two
    screens, and links to every guide; the rest lives in the documentation site."""
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert first and text.index("```") == first.start()
    assert first.group(1).splitlines() == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && smoothcert demo",
        "python -m pytest -q",
    ]
    assert len(text.splitlines()) <= 110
    guides = sorted(path.relative_to(README.parent).as_posix() for path in (README.parent / "docs" / "guide").glob("*.md"))
    assert len(guides) >= 5 and all(f"]({guide})" in text for guide in guides)
