"""One home per training method: every method of the registry is a module of
smoothcert.training.methods with its description and a row in the methods table of
docs/guide/training.md, and nothing outside those modules branches on a method's name."""

import re
from pathlib import Path

import pytest

from smoothcert.training.config import TrainConfig, preset
from smoothcert.training.methods import REGISTRY, method_named

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_method_has_its_module_its_description_and_its_row_in_the_training_guide(name):
    method = REGISTRY[name]
    assert method.name == name and (ROOT / "src" / "smoothcert" / "training" / "methods" / f"{name}.py").is_file()
    assert method.description and "\n" not in method.description
    assert f"| `{name}` |" in (ROOT / "docs" / "guide" / "training.md").read_text()
    assert method.description in TrainConfig.__dataclass_fields__["method"].metadata["help"]  # train -h lists it


def test_no_module_outside_the_methods_branches_on_a_method_s_name():
    branches = []
    for path in (ROOT / "src" / "smoothcert").rglob("*.py"):
        if "methods" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.method\s*(==|!=)|\.method\s+(not\s+)?in\s+[(\[{A-Z]|method\s*[!=]=\s*['\"]", line) and "REGISTRY" not in line and "certify" not in line:
                branches.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert branches == []


def test_an_unknown_method_is_refused_in_one_line():
    with pytest.raises(ValueError, match="method must be one of basic, adre, smoothadv, adre_adv, macer, consistency, smoothmix, catrs, "
                                         "clean, got 'mixup'"):
        method_named("mixup")
    with pytest.raises(ValueError, match="method must be one of"):
        preset("mnist", method="mixup").validate()
