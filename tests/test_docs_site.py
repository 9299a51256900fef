"""The documentation site (mkdocs.yml, docs/): its API reference covers every public name of the
package root, and its strict build fails on a name or link that does not resolve."""

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import smoothcert

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"


def _documented() -> list[str]:
    """The identifiers of the API reference's ``::: identifier`` blocks."""
    return re.findall(r"^::: *(\S+)", API.read_text(), flags=re.M)


def _load(identifier: str) -> object:
    module, _, name = identifier.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", smoothcert.__all__)
def test_the_api_reference_documents_every_public_name_of_the_package_root(name):
    """Each name of ``smoothcert.__all__`` has a ``::: module.name`` block, from the module it is
    defined in (the root loads most names lazily, so they are not members the generator sees), and
    that block is the object ``smoothcert.name`` is."""
    blocks = [identifier for identifier in _documented() if identifier.rpartition(".")[2] == name]
    assert blocks, f"docs/api.md has no '::: ....{name}' block"
    assert any(_load(identifier) is getattr(smoothcert, name) for identifier in blocks), blocks


def test_the_api_reference_documents_nothing_twice():
    documented = _documented()
    assert len(documented) == len(set(documented))
    assert len(smoothcert.__all__) == len(set(smoothcert.__all__)) > 20


def test_the_python_guide_names_a_function_for_every_command_and_each_name_resolves():
    """Each row of the guide's "Each command is a function" table: a command of the parser, and
    the dotted names in its call are objects of the package (a renamed function fails here)."""
    from smoothcert.cli.parser import COMMANDS

    rows = re.findall(r"^\| `smoothcert ([\w-]+)` \| `(.+)` \|$", (ROOT / "docs" / "guide" / "python.md").read_text(), flags=re.M)
    assert sorted(command for command, _ in rows) == sorted(COMMANDS)
    for _, call in rows:
        for dotted in re.findall(r"smoothcert(?:\.\w+)+", call):
            _, *names = dotted.split(".")
            value = smoothcert
            for position, name in enumerate(names):
                value = getattr(value, name) if hasattr(value, name) else importlib.import_module(".".join(["smoothcert", *names[:position + 1]]))
            assert callable(value) or isinstance(value, type), dotted


def _build(tmp_path: Path, page: str | None = None) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of a copy of the site, with ``page`` added to the Home page."""
    site = tmp_path / "project"
    site.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", site / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", site / "docs")
    (site / "src").symlink_to(ROOT / "src")
    if page is not None:
        home = site / "docs" / "index.md"
        home.write_text(home.read_text() + "\n" + page + "\n")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=site, capture_output=True, text=True, timeout=300)


def test_the_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra: pip install -e '.[docs]'")
    built = _build(tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stdout + built.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert all(f'id="{identifier}"' in api for identifier in _documented() if identifier != "smoothcert")


@pytest.mark.parametrize("broken, complaint", [
    ("See [nothing][smoothcert.no_such_name].", "smoothcert.no_such_name"),
    ("See [a missing page](guide/no_such_page.md).", "guide/no_such_page.md"),
    ("See [a missing section](guide/install.md#no-such-section).", "#no-such-section"),
    ("See [an unrecognized link](results/).", "results/"),
])
def test_a_name_or_link_that_does_not_resolve_fails_the_strict_build(tmp_path, broken, complaint):
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra: pip install -e '.[docs]'")
    built = _build(tmp_path, broken)
    said = built.stdout + built.stderr
    assert built.returncode != 0
    assert "Aborted with 1 warnings in strict mode" in said and complaint in said, said
