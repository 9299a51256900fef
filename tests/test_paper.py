from dataclasses import replace

import pytest

from smoothcert.studies.paper import PAPER_LABELS, cell_certify_settings, cell_config
from smoothcert.jobs.pipeline import train_and_certify
from smoothcert.storage.tsv import read_results


def test_table1_cells_use_the_papers_settings():
    cifar = cell_config("cifar10", 0.25, 0.1, "DATA", "out")
    assert (cifar.method, cifar.k, cifar.lam, cifar.single_draw_per) == ("adre", 8, 0.1, True)
    assert (cifar.arch, cifar.batch_size, cifar.epochs, cifar.lr) == ("cifar_resnet110", 400, 150, 0.1)
    basic = cell_config("cifar10", 1.0, None, "DATA", "out")
    assert (basic.method, basic.k, basic.lam) == ("basic", 1, 0.0)
    imagenet = cell_config("imagenet", 0.5, 0.05, "DATA", "out")
    assert (imagenet.method, imagenet.k, imagenet.single_draw_per, imagenet.arch) == ("adre", 1, False, "resnet50")
    with pytest.raises(ValueError, match="sigma in"):
        cell_config("cifar10", 0.3, 0.1, "DATA", "out")
    with pytest.raises(ValueError, match="lambda"):
        cell_config("imagenet", 0.5, 0.3, "DATA", "out")


def test_a_cell_runs_end_to_end_on_the_cifar_format(tmp_path, cifar_dir):
    config = cell_config("cifar10", 0.25, 0.1, str(cifar_dir), str(tmp_path / "cell"), arch="cifar_resnet20", epochs=1,
                         batch_size=20, workers=0, device="cpu")
    settings = replace(cell_certify_settings("cifar10"), n0=10, n=40, batch_size=40, skip=2)
    paths = train_and_certify(config, settings, progress=False)
    assert set(paths) == set(PAPER_LABELS) == {"certify", "tcertify", "tcertify_paper"}
    assert [r["idx"] for r in read_results(paths["tcertify"])] == [0, 2, 4]
    # the paper's exact T-CERTIFY, on the same noise, records the level its grid is proven at
    assert {r["level"] for r in read_results(paths["tcertify_paper"])} == {"0.0019"}
    assert {r["level"] for r in read_results(paths["tcertify"])} == {"0.001"}
