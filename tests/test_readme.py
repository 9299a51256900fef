import importlib
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
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
    """README, docs/*.md and the package's docstrings name things as ``smoothcert.a.b``: each must
    exist (a renamed function or module fails here, not in a reader's hands)."""
    root = README.parent
    texts = {path: path.read_text() for path in [README, *sorted((root / "docs").glob("*.md"))]}
    names = {(path, name) for path, text in texts.items() for name in re.findall(r"\b(smoothcert(?:\.[A-Za-z_]\w*)+)", text)}
    for path in sorted((root / "src").rglob("*.py")):
        names |= {(path, name) for name in re.findall(r"`~?(smoothcert(?:\.[A-Za-z_]\w*)+)`", path.read_text())}
    assert len(names) > 50
    broken = sorted(f"{path.relative_to(root)}: {name}" for path, name in names if not _resolves(name))
    assert not broken, broken
