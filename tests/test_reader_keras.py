"""``cnncli summary model.keras`` / ``model.h5``: the Keras reader against Keras itself.

The oracle tests save real models with Keras 3 (``model.save``, on the torch backend) — every
keras.applications CNN of the zoo and small models with the layers the reader maps, nested and
shared models, frozen layers, channels-first data — and compare what cnncli reads from the file
with what Keras reports for the live model: Total / Trainable / Non-trainable params (what
``model.summary()`` prints), every layer's output shape and parameters, the model's outputs;
the applications also with the ``keras-*`` zoo entry (totals, MACs, rows). Keras 2 files
(``tf_keras``, ``.keras`` and ``.h5``) are checked against Keras 2 when it is installed.

The tests without Keras write Keras-3-style ``config.json`` archives by hand: hostile and broken
files must give one line and exit 1, and no heavy library may be imported to read a ``.keras``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clirun import run  # tests/clirun.py

from cnncli.errors import ModelError
from cnncli.model import Summary, summarize
from cnncli.model.readers import ReadOptions
from cnncli.model.readers.keras_file import KERAS_LAYERS, _Reader

os.environ.setdefault("KERAS_BACKEND", "torch")

# -- Keras-3-style files written by hand -----------------------------------------------------------


def _tensor(name: str, shape: list[int | None], call: int = 0, index: int = 0) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": shape, "dtype": "float32", "keras_history": [name, call, index]},
    }


def _layer(class_name: str, name: str, inbound: list[Any], **config: Any) -> dict[str, Any]:
    """A layer as Keras 3 writes it, called once on ``inbound`` (keras tensors)."""
    return {
        "module": "keras.layers",
        "class_name": class_name,
        "config": {"name": name, "trainable": True, **config},
        "name": name,
        "inbound_nodes": [{"args": inbound, "kwargs": {}}] if inbound else [],
    }


def _model(layers: list[dict[str, Any]], inputs: Any, outputs: Any) -> dict[str, Any]:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "handmade",
            "trainable": True,
            "layers": layers,
            "input_layers": inputs,
            "output_layers": outputs,
        },
    }


def _small(
    shape: list[int | None] | None = None, conv: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Input → Conv2D(8, 3) → GlobalAveragePooling2D → Dense(10), as Keras 3 writes it."""
    shape = shape or [None, 32, 32, 3]
    spatial = [None if s is None else s - 2 for s in shape[1:3]]
    options = {
        "filters": 8,
        "kernel_size": [3, 3],
        "strides": [1, 1],
        "padding": "valid",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "groups": 1,
        "activation": "relu",
        "use_bias": True,
    } | (conv or {})
    layers = [
        _layer("InputLayer", "image", [], batch_shape=shape),
        _layer("Conv2D", "conv", [_tensor("image", shape)], **options),
        _layer(
            "GlobalAveragePooling2D",
            "pool",
            [_tensor("conv", [None, *spatial, 8])],
            data_format="channels_last",
            keepdims=False,
        ),
        _layer(
            "Dense",
            "logits",
            [_tensor("pool", [None, 8])],
            units=10,
            activation="softmax",
            use_bias=True,
        ),
    ]
    return _model(layers, [["image", 0, 0]], [["logits", 0, 0]])


def _archive(path: Path, config: Any, *, raw: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", raw if raw is not None else json.dumps(config))
        z.writestr("model.weights.h5", b"")
    return path


def test_a_handmade_model_is_counted_from_its_config(tmp_path: Path) -> None:
    s = summarize(str(_archive(tmp_path / "m.keras", _small())))
    assert (s.layout, s.framework, s.name) == ("channels_last", "keras", "handmade")
    assert s.inputs == {"image": (32, 32, 3)}
    assert [(r.name, r.type, r.output_shape, r.params) for r in s.layers()] == [
        ("conv", "conv2d", (30, 30, 8), 3 * 3 * 3 * 8 + 8),
        ("pool", "global_avgpool", (8,), 0),
        ("logits", "dense", (10,), 8 * 10 + 10),
    ]
    assert s.rows[0].activation == "relu"
    assert s.totals.macs == 30 * 30 * 8 * 27 + 80
    assert s.notes[0] == "read from config.json (Keras 3.15.1); the weights were not opened"


def test_every_mapped_class_gives_a_type_cnncli_knows() -> None:
    from cnncli.model.layers import LAYER_TYPES

    cfg = {
        "filters": 4,
        "kernel_size": [3, 3],
        "pool_size": [2, 2],
        "strides": [1, 1],
        "units": 3,
        "rate": 0.1,
        "target_shape": [4],
        "dims": [1],
        "scale": 1.0,
        "size": [2, 2],
        "height": 4,
        "width": 4,
    }
    reader = _Reader("model.keras", ReadOptions())
    reader.rank = 4
    for class_name, convert in KERAS_LAYERS.items():
        assert convert(cfg, reader)["type"] in LAYER_TYPES, class_name


def test_open_sizes_need_input_and_input_must_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _archive(tmp_path / "open.keras", _small([None, None, None, 3]))
    code, out, err = run(["summary", path], capsys)
    assert code == 1 and out == ""
    assert err == (
        f"cnncli: error: {path}: the input 'image' has open sizes (None, None, 3); give them "
        "with --input in the model's order (H,W,C), e.g. --input 224,224,3\n"
    )
    s = summarize(str(path), options=ReadOptions(input_shape=(64, 48, 3)))
    assert s.inputs == {"image": (64, 48, 3)}
    assert s.rows[0].output_shape == (62, 46, 8)
    assert "input sizes from --input: (64, 48, 3)" in s.notes
    code, out, err = run(["summary", path, "--input", "3,64,64"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("cnncli: error: --input 3,64,64 does not fit the input 'image' ")
    assert err.count("\n") == 1


def test_a_recorded_shape_cnncli_disagrees_with_is_an_error(tmp_path: Path) -> None:
    config = _small()
    config["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["shape"] = [
        None,
        31,
        31,
        8,
    ]
    with pytest.raises(ModelError, match=r"layer 'pool' \(GlobalAveragePooling2D\): Keras "):
        summarize(str(_archive(tmp_path / "m.keras", config)))


def test_shared_counts_the_weights_once() -> None:
    # The format's `shared: true` (what the reader writes for a layer called again): the output
    # and MACs count at every call, the parameters at the first only, trainable: false or not.
    from cnncli.model import summarize_text

    text = """
input: [8, 8, 3]
layout: channels_last
layers:
  - {type: conv2d, name: a, filters: 4, kernel: 3, padding: same, input: input}
  - {type: conv2d, name: a-call2, filters: 4, kernel: 3, padding: same, input: input, shared: true}
  - {type: batchnorm, name: bn, input: a, trainable: false}
  - {type: batchnorm, name: bn-call2, input: a-call2, trainable: false, shared: true}
  - {type: add, input: [bn, bn-call2]}
"""
    s = summarize_text(text)
    rows = {r.name: (r.params, r.macs) for r in s.layers()}
    conv = (3 * 3 * 3 * 4 + 4, 8 * 8 * 4 * 27)
    assert rows["a"] == conv and rows["a-call2"] == (0, conv[1])
    assert rows["bn"] == (16, 0) and rows["bn-call2"] == (0, 0)
    assert (s.totals.trainable_params, s.totals.non_trainable_params) == (conv[0], 16)
    assert s.totals.macs == 2 * conv[1]


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Broken or hostile files and the start of the one line each must give."""
    garbage = tmp / "garbage.keras"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    not_keras = tmp / "notkeras.keras"
    with zipfile.ZipFile(not_keras, "w") as z:
        z.writestr("readme.txt", "hello")
    truncated = tmp / "truncated.keras"
    full = _archive(tmp / "full.keras", _small()).read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    bomb = tmp / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", b" " * 30_000_000)  # 30 MB of blanks, 30 kB packed
    encrypted = tmp / "encrypted.keras"
    with zipfile.ZipFile(encrypted, "w") as z:
        z.writestr("config.json", json.dumps(_small()))
    packed = bytearray(encrypted.read_bytes())
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = packed.index(signature) + flags
        packed[at] |= 1  # "encrypted": zipfile asks for a password
    encrypted.write_bytes(bytes(packed))
    subclassed = {"class_name": "MyModel", "config": {"units": 3}}
    unknown_option = _small(conv={"filters": "many"})
    deep = b"[" * 100_000 + b"]" * 100_000
    h5ish = tmp / "weights.h5"
    h5ish.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    return {
        "garbage": (garbage, "not a Keras model file: neither a .keras zip archive nor an HDF5"),
        "zip without config.json": (not_keras, "a zip archive without config.json"),
        "truncated": (truncated, "a damaged zip archive"),
        "encrypted": (encrypted, "config.json is encrypted (a password-protected zip"),
        "zip bomb": (bomb, "config.json has 30,000,000 bytes, over the file-bytes limit"),
        "not JSON": (
            _archive(tmp / "notjson.keras", None, raw=b"{not json"),
            "the model description is not valid JSON (line 1, column 2",
        ),
        "not UTF-8": (
            _archive(tmp / "latin.keras", None, raw=b'{"a": "\xff"}'),
            "config.json is not UTF-8 text",
        ),
        "deep nesting": (
            _archive(tmp / "deep.keras", None, raw=deep),
            "the model description nests too deeply",
        ),
        "a list": (_archive(tmp / "list.keras", [1, 2]), "the model description is not a JSON"),
        "mixed data formats": (
            _archive(tmp / "mixed.keras", _small(conv={"data_format": "channels_first"})),
            "layers mix data formats (layer 'conv' is channels_first, 'pool' channels_last); "
            "cnncli reads a model in one layout",
        ),
        "nested past the budget": (
            _archive(tmp / "nested.keras", None, raw=b"[" * 150 + b"]" * 150),
            "the model description nests 101 levels deep, over the nesting limit of 100",
        ),
        "subclassed": (
            _archive(tmp / "sub.keras", subclassed),
            "the model is a subclassed Keras model ('MyModel')",
        ),
        "garbage option": (
            _archive(tmp / "option.keras", unknown_option),
            "layer 'conv': filters must be a whole number ≥ 1, got 'many'",
        ),
        "missing key": (
            _archive(tmp / "nolayers.keras", {"class_name": "Functional", "config": {}}),
            "not a Keras model description (no config with layers)",
        ),
        "broken HDF5": (h5ish, "not a readable HDF5 file"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "garbage",
        "zip without config.json",
        "truncated",
        "encrypted",
        "zip bomb",
        "not JSON",
        "not UTF-8",
        "deep nesting",
        "a list",
        "nested past the budget",
        "mixed data formats",
        "subclassed",
        "garbage option",
        "missing key",
        "broken HDF5",
    ],
)
def test_bad_files_give_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, start = _bad_files(tmp_path)[case]
    code, out, err = run(["summary", path], capsys)
    assert (code, out) == (1, ""), err
    assert err.startswith(f"cnncli: error: {path}: {start}"), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_h5_without_h5py_names_the_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    monkeypatch.setitem(sys.modules, "h5py", None)
    code, out, err = run(["summary", path], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"cnncli: error: {path}: reading a legacy .h5 Keras file needs h5py, which is not "
        "installed; pip install h5py (or save the model as .keras, which needs nothing)\n"
    )


def test_h5_weights_only_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kernel", data=[1.0, 2.0])
    code, out, err = run(["summary", path], capsys)
    assert (code, out) == (1, "")
    assert "an HDF5 file without model_config: weights only (model.save_weights)" in err


def test_h5_model_config_is_read(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(_small())
        f.attrs["keras_version"] = "3.15.1"
    s = summarize(str(path))
    assert s.totals.params == 3 * 3 * 3 * 8 + 8 + 8 * 10 + 10
    assert s.notes[0].startswith("read from model_config of a legacy .h5 file (Keras 3.15.1)")


def test_reading_a_keras_file_imports_no_heavy_library_nor_yaml(tmp_path: Path) -> None:
    path = _archive(tmp_path / "m.keras", _small())
    code = (
        "import sys\n"
        "from cnncli.cli import main\n"
        "try:\n"
        f"    main(['summary', {str(path)!r}, '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = ('numpy', 'h5py', 'keras', 'tensorflow', 'torch', 'onnx', 'PIL', 'numba', 'yaml')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "sys.stderr.write(repr(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr == "[]"


# -- the oracle: Keras 3 ------------------------------------------------------------------------------


def _count(weights: list[Any]) -> int:
    return sum(math.prod(w.shape) for w in weights)


def _keras_rows(model: Any, prefix: str = "") -> dict[str, tuple[tuple[int, ...], int, int, int]]:
    """Row name → (output shape, params, trainable, non-trainable) as Keras has them: every
    call of every layer (later calls share the weights: 0); a nested model's layers under
    ``MODEL.`` (one input and output: a block with its own row) or ``MODEL_`` (inlined, no
    row), for its first call."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        nested = hasattr(layer, "layers")
        block = nested and len(layer.inputs) == 1 and len(layer.outputs) == 1
        nodes = layer._inbound_nodes if not prefix else layer._inbound_nodes[:1]
        for k, node in enumerate(nodes):
            if nested and not block:
                continue
            name = f"{prefix}{layer.name}" + (f"-call{k + 1}" if k else "")
            counts = (
                layer.count_params(),
                _count(layer.trainable_weights),
                _count(layer.non_trainable_weights),
            )
            out[name] = (
                tuple(node.output_tensors[0].shape[1:]),
                *(counts if k == 0 else (0, 0, 0)),
            )
        if nested:
            out |= _keras_rows(layer, f"{prefix}{layer.name}{'.' if block else '_'}")
    return out


def _agrees_with_keras(model: Any, s: Summary) -> None:
    """Totals, outputs, every row: cnncli's reading of the file against the live model."""
    t = s.totals
    assert (t.params, t.trainable_params, t.non_trainable_params) == (
        model.count_params(),
        _count(model.trainable_weights),
        _count(model.non_trainable_weights),
    )
    assert list(s.outputs.values()) == [tuple(o.shape[1:]) for o in model.outputs]
    ours = {
        r.name: (r.output_shape, r.params, r.trainable_params, r.non_trainable_params)
        for r in s.rows
    }
    keras = _keras_rows(model)
    assert {k: ours.get(k) for k in keras} == keras
    # No row without a Keras layer, except the layers of a nested model's later calls.
    extra = [r.name for r in s.layers() if r.name not in keras and "-call" not in r.name]
    assert not extra


@pytest.fixture(scope="session")
def keras_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keras")


def _keras() -> Any:
    return pytest.importorskip("keras")


# Small models with the layers the reader maps (built on the torch backend).


def _frozen_sequential(keras: Any) -> Any:
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Rescaling(1 / 255),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu", trainable=False),
            L.BatchNormalization(trainable=False),
            L.SpatialDropout2D(0.1),
            L.Conv2D(64, 3, padding="same", use_bias=False),
            L.BatchNormalization(center=False),
            L.ReLU(max_value=6),
            L.AveragePooling2D(3, strides=2, padding="same"),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(10, activation="softmax"),
        ],
        name="frozen",
    )


def _shared_functional(keras: Any) -> Any:
    L = keras.layers
    a, b = keras.Input((32, 32, 3), name="left"), keras.Input((32, 32, 3), name="right")
    conv = L.Conv2D(16, 3, padding="same", activation="swish", name="shared_conv")
    x = L.Concatenate()([conv(a), conv(b)])
    x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same")(x)
    x = L.SeparableConv2D(24, 3, dilation_rate=2, activation="gelu")(x)
    se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(24, 1, activation="hard_sigmoid")(se)
    x = L.Multiply()([x, se])
    x = L.Add()([x, L.Activation("tanh")(x)])
    x = L.GlobalMaxPooling2D()(x)
    return keras.Model([a, b], L.Dense(3)(x), name="shared")


def _nested(keras: Any) -> Any:
    L = keras.layers
    block = keras.Sequential(
        [L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.ReLU()], name="block"
    )
    inner_in = keras.Input((16, 16, 8))
    inner = keras.Model(inner_in, L.Add()([inner_in, L.Conv2D(8, 1)(inner_in)]), name="residual")
    frozen = keras.Sequential(
        [L.Conv2D(8, 3, padding="same"), L.LayerNormalization()], name="frozen"
    )
    frozen.trainable = False
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 1)(inp)
    x = block(block(x))
    x = inner(x)
    x = frozen(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(4)(x), name="nested")


def _nested_two_ins_outs(keras: Any) -> Any:
    L = keras.layers
    a, b = keras.Input((8, 8, 4)), keras.Input((8, 8, 4))
    pair = keras.Model([a, b], [L.Add()([a, b]), L.Conv2D(6, 3, padding="same")(b)], name="pair")
    inp = keras.Input((8, 8, 4))
    x = L.Conv2D(4, 1)(inp)
    s, t = pair([inp, x])
    y = L.Concatenate()([s, t])
    return keras.Model(inp, L.Flatten()(y), name="two")


def _one_d(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((100, 6))
    x = L.Conv1D(16, 5, padding="causal", dilation_rate=2)(inp)
    x = L.ZeroPadding1D((1, 2))(x)
    x = L.Cropping1D((2, 1))(x)
    x = L.SeparableConv1D(8, 3, strides=2, padding="same")(x)
    x = L.DepthwiseConv1D(3)(x)
    x = L.UpSampling1D(3)(x)
    x = L.AveragePooling1D(2, padding="same")(x)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    x = L.Conv1DTranspose(4, 3, strides=2)(x)
    x = L.Dense(5)(x)  # per position
    x = L.LayerNormalization()(x)
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(inp, L.Softmax()(x), name="one_d")


def _three_d(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((8, 16, 16, 2))
    x = L.Conv3D(4, 3, padding="same")(inp)
    x = L.MaxPooling3D(2)(x)
    x = L.ZeroPadding3D(1)(x)
    x = L.Cropping3D(((1, 0), (0, 1), (1, 1)))(x)
    x = L.Conv3DTranspose(3, 2, strides=2, padding="same")(x)
    x = L.UpSampling3D((1, 2, 2))(x)
    x = L.AveragePooling3D(2)(x)
    return keras.Model(inp, L.GlobalAveragePooling3D()(x), name="three_d")


def _shapes_2d(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((21, 19, 3))
    x = L.Normalization()(inp)
    x = L.Conv2DTranspose(6, 3, strides=2, padding="valid", output_padding=1)(x)
    x = L.Conv2DTranspose(6, 4, strides=2, padding="same", activation="relu")(x)
    x = L.Cropping2D(((1, 2), (3, 0)))(x)
    x = L.ZeroPadding2D(((0, 1), (2, 0)))(x)
    x = L.UpSampling2D((2, 1), interpolation="bilinear")(x)
    x = L.Conv2D(8, (3, 5), strides=(2, 3), groups=2)(x)
    x = L.Resizing(20, 30)(x)
    x = L.MaxPooling2D((3, 2), strides=(1, 2))(x)
    x = L.Permute((2, 1, 3))(x)
    x = L.Reshape((-1, 8))(x)
    x = L.Dense(4, activation="relu6")(x)
    return keras.Model(inp, L.Flatten()(x), name="shapes")


def _channels_first(keras: Any) -> Any:
    L = keras.layers
    inp = keras.Input((3, 32, 30))
    x = L.Conv2D(8, 3, strides=2, padding="same", data_format="channels_first")(inp)
    x = L.BatchNormalization(axis=1)(x)
    y = L.DepthwiseConv2D(3, padding="same", data_format="channels_first")(x)
    x = L.Concatenate(axis=1)([x, y])
    x = L.MaxPooling2D(2, data_format="channels_first")(x)
    x = L.ZeroPadding2D(1, data_format="channels_first")(x)
    x = L.UpSampling2D(2, data_format="channels_first")(x)
    x = L.GlobalAveragePooling2D(data_format="channels_first")(x)
    return keras.Model(inp, L.Dense(2)(x), name="cf")


SMALL: dict[str, Callable[[Any], Any]] = {
    "frozen_sequential": _frozen_sequential,
    "shared_functional": _shared_functional,
    "nested": _nested,
    "nested_two_ins_outs": _nested_two_ins_outs,
    "one_d": _one_d,
    "three_d": _three_d,
    "shapes_2d": _shapes_2d,
    "channels_first": _channels_first,
}


@functools.cache
def _small_model(name: str) -> Any:
    return SMALL[name](_keras())


@pytest.mark.oracle
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_models_against_keras(name: str, suffix: str, keras_dir: Path) -> None:
    model = _small_model(name)
    path = keras_dir / f"{name}{suffix}"
    if not path.exists():
        model.save(path)
    s = summarize(str(path))
    assert s.layout == ("channels_first" if name == "channels_first" else "channels_last")
    _agrees_with_keras(model, s)


@pytest.mark.oracle
def test_shared_rows_and_notes(keras_dir: Path) -> None:
    pytest.importorskip("keras")
    model = _small_model("nested")
    path = keras_dir / "nested.keras"
    if not path.exists():
        model.save(path)
    s = summarize(str(path))
    blocks = [(r.name, r.type, r.params) for r in s.rows if r.kind == "block"]
    assert blocks == [
        ("block", "block", 8 * 9 * 8 + 8 + 4 * 8),
        ("block-call2", "block", 0),
        ("residual", "residual", 8 * 8 + 8),
        ("frozen", "frozen", 8 * 9 * 8 + 8 + 2 * 8),
    ]
    assert (
        "shared weights: block (parameters counted once, on the first call; the rows NAME-call2, … share them)"
        in s.notes
    )


# -- the keras.applications zoo --------------------------------------------------------------------


@functools.cache
def _application_file(application: str, folder: Path) -> Path:
    from test_zoo_keras import _keras_model  # the NASNet-on-torch build lives there

    path = folder / f"{application}.keras"
    if not path.exists():
        _keras_model(application).save(path)
    return path


@pytest.mark.oracle
@pytest.mark.parametrize(
    "zoo",
    [
        "keras-resnet50",
        "keras-vgg16",
        "keras-mobilenetv2",
        "keras-densenet121",
        "keras-efficientnetb0",
        "keras-inceptionv3",
        "keras-xception",
        "keras-nasnetmobile",
    ],
)
def test_applications_against_keras_and_the_zoo(zoo: str, keras_dir: Path) -> None:
    _keras()
    from test_zoo_keras import KERAS_ZOO, _keras_model

    want = KERAS_ZOO[zoo]
    path = _application_file(want.application, keras_dir)
    s = summarize(str(path))
    _agrees_with_keras(_keras_model(want.application), s)
    entry = summarize(zoo)
    assert s.totals == entry.totals
    assert s.outputs == {"predictions": want.output} == entry.outputs
    assert len(s.layers()) == len(entry.layers()) == want.layers
    assert sorted((r.type, r.output_shape, r.params) for r in s.layers()) == sorted(
        (r.type, r.output_shape, r.params) for r in entry.layers()
    )


# -- the oracle: Keras 2 (tf_keras) --------------------------------------------------------------------


@functools.cache
def _keras2_model() -> Any:
    keras = pytest.importorskip("tf_keras")
    L = keras.layers
    block = keras.Sequential(
        [L.Conv2D(4, 3, padding="same", input_shape=(30, 30, 8)), L.BatchNormalization()],
        name="block",
    )
    inner_in = keras.Input((30, 30, 4))
    inner = keras.Model(inner_in, L.Concatenate()([inner_in, L.Conv2D(2, 1)(inner_in)]))
    inp = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, activation="relu")(inp)
    x = L.Add()([block(x), block(x)])
    x = inner(x)
    x = L.BatchNormalization(trainable=False)(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10)(x))


@pytest.mark.oracle
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras2_files(suffix: str, keras_dir: Path) -> None:
    model = _keras2_model()
    path = keras_dir / f"keras2{suffix}"
    if not path.exists():
        model.save(path)
    s = summarize(str(path))
    t = s.totals
    assert (t.params, t.trainable_params, t.non_trainable_params) == (
        model.count_params(),
        _count(model.trainable_weights),
        _count(model.non_trainable_weights),
    )
    ours = {r.name: r.output_shape for r in s.rows}
    for layer in model.layers[1:]:
        assert ours[layer.name] == tuple(
            layer.output_shape[1:]
            if not isinstance(layer.output_shape, list)
            else layer.output_shape[0][1:]
        )


# -- classes cnncli has no type for --------------------------------------------------------------------


def _unknown_layers(keras: Any) -> Any:
    L = keras.layers

    @keras.saving.register_keras_serializable(package="cnncli_test")
    class Scale(L.Layer):  # type: ignore[misc,name-defined]
        """A custom layer: one weight per channel, which only the weights file knows."""

        def build(self, shape: Any) -> None:
            self.w = self.add_weight(shape=(shape[-1],))

        def call(self, x: Any) -> Any:
            return x * self.w

    image, tokens = keras.Input((16, 16, 3)), keras.Input((5,), dtype="int32")
    x = L.Conv2D(4, 3, activation="softsign", name="edge")(image)
    x = Scale(name="scale")(x)
    x = L.UnitNormalization()(x)
    x = L.Activation("softsign")(x)
    x = L.Subtract()([x, L.Conv2D(4, 1)(x)])
    words = L.Flatten()(L.Embedding(100, 8)(tokens))
    x = L.Concatenate()([L.Flatten()(x), words])
    return keras.Model([image, tokens], L.Dense(2)(x), name="unknown")


@pytest.mark.oracle
def test_unknown_classes_are_opaque_rows(
    keras_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keras = _keras()
    model = _unknown_layers(keras)
    path = keras_dir / "unknown.keras"
    model.save(path)
    s = summarize(str(path))
    t = s.totals
    scale = _count(model.get_layer("scale").weights)
    # Every number Keras has, except the custom layer's weights, which only the weights file holds.
    assert (t.params, t.trainable_params) == (
        model.count_params() - scale,
        _count(model.trainable_weights) - scale,
    )
    assert t.not_counted == {
        "Scale": 1,
        "UnitNormalization": 1,
        "Activation(softsign)": 1,
        "Subtract": 1,
        "Embedding": 1,
    }
    keras_rows = _keras_rows(model)
    ours = {r.name: (r.output_shape, r.params) for r in s.rows}
    assert {k: ours[k] for k in keras_rows} == {
        k: (shape, 0 if k == "scale" else params) for k, (shape, params, _, _) in keras_rows.items()
    }
    assert s.notes[1:] == [
        "weights of scale not known: only the weights file holds them, which cnncli does not "
        "read; the totals leave them out",
        "activations cnncli has no name for, left out of the type column (they change no "
        "number): edge ('softsign')",
    ]
    code, out, err = run(["summary", path, "--strict"], capsys)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "Scale" in err


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_models_verify_with_torch(name: str, keras_dir: Path) -> None:
    # `cnncli summary model.keras --verify`: PyTorch's shape rules agree with every row read from
    # the file (shared rows reuse their first call's weights).
    pytest.importorskip("torch")
    from cnncli.model.torch_check import check

    model = _small_model(name)
    path = keras_dir / f"{name}.keras"
    if not path.exists():
        model.save(path)
    bad = [c for c in check(summarize(str(path))) if not c.ok]
    assert not bad, bad[:3]
