"""The zoo against the published numbers, and against PyTorch layer by layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnncli.model import ZOO_DIR, summarize, zoo_names

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "models"

# torchvision's published num_params and GFLOPS (its "GFLOPS" are fvcore MACs), Keras's and the
# PyTorch tutorial's parameter counts. Non-trainable = batchnorm running mean and variance.
PUBLISHED = {
    "mnist-convnet": (34_826, 0, 0.002),
    "lenet5": (61_706, 0, 0.000),
    "alexnet": (61_100_840, 0, 0.714),
    "vgg16": (138_357_544, 0, 15.470),
    "resnet18": (11_689_512, 9_600, 1.814),
    "resnet50": (25_557_032, 53_120, 4.089),
    "mobilenet_v2": (3_504_872, 34_112, 0.301),
    "googlenet": (6_624_904, 14_560, 1.498),
}


def test_zoo_has_the_classics() -> None:
    # Completeness against torchvision is tests/test_zoo_torchvision.py; Keras: test_zoo_keras.py.
    assert sorted(set(PUBLISHED) - set(zoo_names())) == []


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_totals(name: str) -> None:
    trainable, non_trainable, gmacs = PUBLISHED[name]
    t = summarize(name).totals
    assert t.trainable_params == trainable
    assert t.non_trainable_params == non_trainable
    assert t.params == trainable + non_trainable
    assert f"{t.macs / 1e9:.3f}" == f"{gmacs:.3f}"
    assert t.flops == 2 * t.macs


def test_resnet50_exact_macs() -> None:
    # fvcore's count for torchvision's resnet50 at 224x224 (conv + linear, bias excluded).
    assert summarize("resnet50").totals.macs == 4_089_184_256


def test_resnet152_sample_matches_torchvision() -> None:
    t = summarize(str(SAMPLES / "resnet152.yaml")).totals
    assert t.trainable_params == 60_192_808
    assert f"{t.macs / 1e9:.3f}" == "11.514"


def test_mnist_convnet_matches_keras_summary() -> None:
    s = summarize("mnist-convnet")
    got = [(r.name, r.output_shape, r.params) for r in s.layers()]
    assert got == [
        ("conv2d", (26, 26, 32), 320),
        ("max_pooling2d", (13, 13, 32), 0),
        ("conv2d_1", (11, 11, 64), 18_496),
        ("max_pooling2d_1", (5, 5, 64), 0),
        ("flatten", (1600,), 0),
        ("dropout", (1600,), 0),
        ("dense", (10,), 16_010),
    ]


def test_lenet5_matches_tutorial() -> None:
    s = summarize("lenet5")
    params = {r.name: r.params for r in s.layers() if r.params}
    assert params == {"conv1": 156, "conv2": 2416, "fc1": 48_120, "fc2": 10_164, "fc3": 850}
    assert s.layers()[-1].output_shape == (10,)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_rows_add_up_to_totals(name: str) -> None:
    s = summarize(name)
    layers = s.layers()
    assert sum(r.params for r in layers) == s.totals.params
    assert sum(r.trainable_params for r in layers) == s.totals.trainable_params
    assert sum(r.macs for r in layers) == s.totals.macs


def test_samples_point_at_the_packaged_zoo() -> None:
    # The package ships cnncli/model/zoo; samples/models links to each of its files (one copy,
    # nothing to keep equal).
    zoo_files = sorted(p.name for p in ZOO_DIR.glob("*.yaml"))
    links = sorted(p.name for p in SAMPLES.glob("*.yaml") if p.is_symlink())
    assert links == zoo_files
    for name in links:
        assert (SAMPLES / name).resolve() == (ZOO_DIR / name).resolve()


def test_zoo_ships_inside_the_package() -> None:
    import cnncli

    assert ZOO_DIR == Path(cnncli.__file__).parent / "model" / "zoo"
    text = (ROOT / "pyproject.toml").read_text()
    assert '"model/zoo/*.yaml"' in text


@pytest.mark.oracle
@pytest.mark.parametrize("name", zoo_names())
def test_zoo_layer_by_layer_against_torch(name: str) -> None:
    pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    checks = check(summarize(name))
    assert len(checks) == len(summarize(name).layers())
    bad = [c for c in checks if not c.ok]
    assert not bad, bad[:3]


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["mnist-convnet", "lenet5", "resnet18"])
def test_zoo_runs_for_real_on_cpu(name: str) -> None:
    # The meta device runs PyTorch's shape rules; a real CPU run confirms them for a few models.
    pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    assert all(c.ok for c in check(summarize(name), device="cpu"))


@pytest.mark.oracle
def test_example_and_resnet152_against_torch() -> None:
    pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    for path in ("example.yaml", "resnet152.yaml"):
        assert all(c.ok for c in check(summarize(str(SAMPLES / path))))
