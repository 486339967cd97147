"""Keras models for ``cnncli summary``: ``.keras`` archives and legacy ``.h5`` files, read from
the architecture the file states — never from its weights, and without TensorFlow or Keras.

A ``.keras`` file is a zip archive whose ``config.json`` describes the model; it is read with
:mod:`zipfile` and :mod:`json` (bounded by the ``file-bytes`` limit however large the archive
claims it is). A legacy ``.h5`` file keeps the same description in its root attribute
``model_config``, read with h5py when it is installed. Keras 3 writes each call of a layer with
the shapes of its input tensors; Keras 2 (``tf.keras``) writes the calls as name lists.

The description becomes model-format data (:mod:`cnncli.model.readers`): one layer per call of a
Keras layer, named as Keras names it, with Keras's options in the format's words, so that shapes,
parameters and MACs come from the one arithmetic. A nested model (one input, one output) is a
block, called once per use; one with several inputs or outputs is inlined, its layers named
``MODEL_LAYER``. A layer or nested model used again shares its weights: its later calls are
``shared: true`` (named ``NAME-call2``, …), so parameters are counted once, as Keras counts them.
A Keras class cnncli does not know is an ``opaque`` row with the output shape Keras recorded.

The input shapes Keras recorded for every layer are compared with the shapes cnncli computes:
a difference is a bug of this reader, reported as an error, never papered over.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncli import limits
from cnncli.errors import ModelError, UsageError
from cnncli.model.layers import (
    ACTIVATION_ALIASES,
    ACTIVATIONS,
    show,
)
from cnncli.model.readers import ReadModel, ReadOptions, model_data

if TYPE_CHECKING:
    from cnncli.model.build import Summary

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Keras's model classes: their configs hold layers (a nested model is a layer too).
_MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
#: Names the model format takes (``.`` separates a block from its layers).
_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")

Shape = tuple[int | None, ...]
#: A Keras tensor reference: (layer name, call index, output index).
Ref = tuple[str, int, int]


def read_keras(source: str, options: ReadOptions) -> ReadModel:
    """``source`` (a ``.keras`` archive or a legacy ``.h5`` file) as model-format data."""
    text, origin = _config_text(Path(source), source)
    config = _parse(text, source)
    reader = _Reader(source, options)
    data = reader.model(config)
    notes = [f"read from {origin}; the weights were not opened", *reader.notes()]
    return ReadModel(
        model_data(data), source, notes, check=lambda summary: _cross_check(summary, reader)
    )


# -- the file -------------------------------------------------------------------------------------


def _config_text(path: Path, label: str) -> tuple[str, str]:
    """The model's JSON description and where it came from (told apart by content, not name)."""
    try:
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "no such file"
            raise ModelError(f"{label}: {what}; give a .keras or .h5 Keras model file")
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as err:
        raise ModelError(f"{label}: cannot read ({err.strerror or err})") from None
    if head.startswith(_ZIP_MAGIC):
        return _from_zip(path, label)
    if head == _HDF5_MAGIC:
        return _from_h5(path, label)
    raise ModelError(
        f"{label}: not a Keras model file: neither a .keras zip archive nor an HDF5 .h5 file "
        f"(it starts with {show(head)}); save the model with model.save('model.keras')"
    )


def _from_zip(path: Path, label: str) -> tuple[str, str]:
    budget = limits.get("file-bytes")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                listing = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
                raise ModelError(
                    f"{label}: a zip archive without config.json, so not a Keras .keras file "
                    f"(it holds {len(names):,} files: {listing or 'none'}); save the model with "
                    "model.save('model.keras')"
                )
            info = archive.getinfo("config.json")
            where = f"{label}: config.json"
            limits.check("file-bytes", info.file_size, f"{where} has {info.file_size:,} bytes")
            with archive.open(info) as member:
                raw = member.read(budget + 1)  # never more, whatever the header claims
            limits.check("file-bytes", len(raw), f"{where} unpacks to more than {budget:,} bytes")
            version = _zip_version(archive, names)
    except zipfile.BadZipFile as err:
        raise ModelError(f"{label}: a damaged zip archive ({err}); is the file complete?") from None
    except RuntimeError:  # zipfile's word for a member that needs a password
        raise ModelError(
            f"{label}: config.json is encrypted (a password-protected zip, which Keras never "
            "writes); save the model again with model.save('model.keras')"
        ) from None
    except (zlib.error, EOFError, NotImplementedError) as err:
        raise ModelError(f"{label}: config.json cannot be unpacked ({err})") from None
    except OSError as err:
        raise ModelError(f"{label}: cannot read ({err.strerror or err})") from None
    return _decode(raw, f"{label}: config.json"), f"config.json{version}"


def _zip_version(archive: zipfile.ZipFile, names: list[str]) -> str:
    """`` of Keras 3.15.1`` from metadata.json (small; skipped when odd)."""
    if "metadata.json" not in names or archive.getinfo("metadata.json").file_size > 65536:
        return ""
    try:
        meta = json.loads(archive.read("metadata.json"))
    except ValueError:
        return ""
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    return f" (Keras {version})" if isinstance(version, str) and len(version) < 40 else ""


def _from_h5(path: Path, label: str) -> tuple[str, str]:
    try:
        import h5py  # type: ignore[import-untyped]  # no stubs; read only here
    except ImportError:
        raise ModelError(
            f"{label}: reading a legacy .h5 Keras file needs h5py, which is not installed; "
            "pip install h5py (or save the model as .keras, which needs nothing)"
        ) from None
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except OSError as err:
        raise ModelError(f"{label}: not a readable HDF5 file ({err})") from None
    if raw is None:
        raise ModelError(
            f"{label}: an HDF5 file without model_config: weights only (model.save_weights), "
            "not a whole model; save the model with model.save('model.keras')"
        )
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    origin = f"model_config of a legacy .h5 file (Keras {version})" if version else "model_config"
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes):
        raise ModelError(f"{label}: model_config is not text ({type(raw).__name__})")
    limits.check("file-bytes", len(raw), f"{label}: model_config has {len(raw):,} bytes")
    return _decode(raw, f"{label}: model_config"), origin


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelError(f"{where} is not UTF-8 text (byte {err.start:,})") from None


def _parse(text: str, label: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelError(
            f"{label}: the model description is not valid JSON (line {err.lineno}, column "
            f"{err.colno}: {err.msg})"
        ) from None
    except RecursionError:
        raise ModelError(f"{label}: the model description nests too deeply to be read") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise ModelError(f"{label}: the model description cannot be read ({err})") from None
    if isinstance(value, dict | list):
        _check_depth(value, label)
    return value


def _check_depth(value: Any, label: str) -> None:
    """The ``nesting`` budget, counted without recursion: everything after walks the
    description recursively (a Keras model nests some 15 levels, a nested model 5 more)."""
    limit = limits.get("nesting")
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            limits.check(
                "nesting", depth, f"{label}: the model description nests {depth} levels deep"
            )
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


# -- Keras's graph ---------------------------------------------------------------------------------


def _history(value: Any) -> Iterator[tuple[Ref, Shape | None]]:
    """The tensors a call reads, in order: Keras 3's ``__keras_tensor__`` entries (with their
    shapes) anywhere in its arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config") or {}
            name, node, index = cfg["keras_history"]
            shape = cfg.get("shape")
            yield (str(name), int(node), int(index)), _shape(shape)
            return
        for v in value.values():
            yield from _history(v)
    elif isinstance(value, list):
        for v in value:
            yield from _history(v)


def _shape(value: Any) -> Shape | None:
    """A recorded shape without its batch axis (None when the file does not state one)."""
    if not isinstance(value, list) or not value:
        return None
    if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
        return None
    return tuple(value[1:])


def _call_inputs(node: Any) -> list[tuple[Ref, Shape | None]]:
    """What one call of a layer reads: Keras 3 ``{"args": …, "kwargs": …}`` or Keras 2's list
    of ``[name, call, output, kwargs]``."""
    if isinstance(node, dict):
        return list(_history(node.get("args"))) + list(_history(node.get("kwargs")))
    if isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str):  # a single reference, unwrapped
            node = [node]
        return [((str(r[0]), int(r[1]), int(r[2])), None) for r in node]
    raise TypeError(f"a call of the layer is {show(node)}")


def _refs(value: Any) -> list[Ref]:
    """``input_layers`` / ``output_layers``: a list of references (one may come unwrapped)."""
    if isinstance(value, dict):  # Keras 3's inputs by name: {"image": [name, 0, 0], …}
        value = list(value.values())
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list):
        raise TypeError(f"model inputs/outputs are {show(value)}")
    return [(str(r[0]), int(r[1]), int(r[2])) for r in value]


def _layers(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    layers = cfg.get("layers")
    if not isinstance(layers, list) or not all(isinstance(e, dict) for e in layers):
        raise TypeError("the model's layers are not a list of layer descriptions")
    return layers


def _entry_name(entry: dict[str, Any]) -> str:
    name = entry.get("name") or (entry.get("config") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {show(entry.get('class_name'))} layer has no name")
    return name


def _is_model(entry: dict[str, Any]) -> bool:
    cfg = entry.get("config")
    return entry.get("class_name") in _MODEL_CLASSES or (
        isinstance(cfg, dict) and isinstance(cfg.get("layers"), list)
    )


def _batch_shape(entry: dict[str, Any]) -> Shape | None:
    """The shape an InputLayer (or a Sequential's first layer) declares, batch dropped."""
    cfg = entry.get("config") or {}
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            return _shape(cfg[key])
    build = entry.get("build_config") or {}
    return _shape(build.get("input_shape"))


def _build_shapes(entry: dict[str, Any]) -> list[Shape | None]:
    """The input shapes a layer was built on (``build_config``), one per input."""
    shape = (entry.get("build_config") or {}).get("input_shape")
    if isinstance(shape, list) and shape and all(isinstance(s, list) or s is None for s in shape):
        return [_shape(s) for s in shape]  # a merge: one shape per input
    return [_shape(shape)]


def _skips_first_call(entry: dict[str, Any]) -> bool:
    """Keras 2 leaves out a nested model's own first call (input to output) when it has an
    InputLayer, and numbers the calls it keeps from 1."""
    layers = (entry.get("config") or {}).get("layers")
    return _is_model(entry) and (
        not layers or (isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer")
    )


@dataclass
class _Graph:
    """One model's calls: for each layer its calls' inputs (with the shapes Keras recorded), in
    the order Keras lists them, and the model's inputs and outputs."""

    cfg: dict[str, Any]
    sequential: bool
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, list[list[tuple[Ref, Shape | None]]]] = field(default_factory=dict)
    inputs: list[Ref] = field(default_factory=list)
    outputs: list[Ref] = field(default_factory=list)
    #: Output shapes Keras recorded where a later call reads them.
    shapes: dict[Ref, Shape] = field(default_factory=dict)

    @classmethod
    def of(cls, class_name: str, cfg: dict[str, Any]) -> _Graph:
        graph = cls(cfg, sequential=class_name == "Sequential" or "input_layers" not in cfg)
        for entry in _layers(cfg):
            name = _entry_name(entry)
            if name in graph.entries:
                raise TypeError(f"two layers are named {show(name)}")
            graph.entries[name] = entry
        if graph.sequential:
            graph._chain()
        else:
            graph._functional()
        for name, calls in graph.calls.items():
            for k, call in enumerate(calls):
                built = _build_shapes(graph.entries[name]) if k == 0 else []
                for i, (ref, shape) in enumerate(call):
                    shape = shape or (built[i] if i < len(built) else None)
                    call[i] = (ref, shape)
                    if shape is not None:
                        graph.shapes.setdefault(ref, shape)
        return graph

    def _chain(self) -> None:
        """A Sequential: each layer reads the previous one (the first reads the InputLayer, or
        the model's own input when there is none)."""
        prev: Ref | None = None
        for name, entry in self.entries.items():
            if entry.get("class_name") == "InputLayer" and prev is None:
                prev = (name, 0, 0)
                self.inputs = [prev]
                continue
            if prev is None:
                prev = ("", 0, 0)
                self.inputs = [prev]
            self.calls[name] = [[(prev, None)]]
            prev = (name, 0, 0)
        if prev is None or not self.calls:
            raise TypeError("a Sequential model without layers")
        self.outputs = [prev]

    def _functional(self) -> None:
        legacy = False
        for name, entry in self.entries.items():
            if entry.get("class_name") == "InputLayer":
                continue
            nodes = entry.get("inbound_nodes") or []
            legacy = legacy or any(isinstance(n, list) for n in nodes)
            self.calls[name] = [_call_inputs(n) for n in nodes]
        self.inputs = _refs(self.cfg.get("input_layers"))
        self.outputs = _refs(self.cfg.get("output_layers"))
        if legacy:
            self.calls = {
                name: [[(self._renumber(r), s) for r, s in call] for call in calls]
                for name, calls in self.calls.items()
            }
            self.outputs = [self._renumber(r) for r in self.outputs]

    def _renumber(self, ref: Ref) -> Ref:
        name, node, index = ref
        entry = self.entries.get(name)
        if entry is not None and _skips_first_call(entry):
            return (name, node - 1, index)
        return ref


# -- Keras layers → the format's layers -------------------------------------------------------------


class _Unknown(Exception):
    """A Keras class (or an option of it) cnncli has no type for: an ``opaque`` row."""


def _ints(value: Any) -> Any:
    """Keras's tuples (lists in JSON) as lists; one number stays a number."""
    return list(value) if isinstance(value, list | tuple) else value


def _activation(value: Any) -> str | None:
    """A Keras activation (a name, or Keras 3's serialized function) as the format's name."""
    if isinstance(value, dict):
        value = value.get("config") if isinstance(value.get("config"), str) else None
        if value is None:
            raise _Unknown("a custom activation")
    if value is None or value == "linear":
        return None
    if not isinstance(value, str):
        raise _Unknown(f"activation {show(value)}")
    key = value.lower()
    key = ACTIVATION_ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        raise _Unknown(f"activation {value!r}")
    return key


def _common(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    """``use_bias`` and ``activation`` of a conv or dense layer. An activation cnncli has no
    name for is left out (it changes no number) and named in a note."""
    out: dict[str, Any] = {}
    if "use_bias" in cfg:
        out["bias"] = cfg["use_bias"]
    try:
        act = _activation(cfg.get("activation"))
    except _Unknown:
        act = None
        reader.unknown_activations.append(f"{reader.current} ({show(cfg.get('activation'))})")
    if act is not None:
        out["activation"] = act
    return out


def _window(cfg: dict[str, Any], kernel: str = "kernel_size") -> dict[str, Any]:
    out = {"kernel": _ints(cfg.get(kernel)), "padding": cfg.get("padding", "valid")}
    if cfg.get("strides") is not None:
        out["stride"] = _ints(cfg["strides"])
    if cfg.get("dilation_rate") not in (None, 1, [1], [1, 1], [1, 1, 1]):
        out["dilation"] = _ints(cfg["dilation_rate"])
    return out


Converter = Callable[[dict[str, Any], "_Reader"], dict[str, Any]]


def _conv(kind: str) -> Converter:
    def convert(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
        out = {"type": kind, "filters": cfg.get("filters"), **_window(cfg), **_common(cfg, reader)}
        if cfg.get("groups", 1) != 1:
            out["groups"] = cfg["groups"]
        if cfg.get("output_padding") is not None:
            out["output_padding"] = _ints(cfg["output_padding"])
        return out

    return convert


def _depthwise(kind: str) -> Converter:
    def convert(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
        out = {"type": kind, **_window(cfg), **_common(cfg, reader)}
        out["depth_multiplier"] = cfg.get("depth_multiplier", 1)
        if cfg.get("filters") is not None:  # SeparableConv
            out["filters"] = cfg["filters"]
        return out

    return convert


def _pool(kind: str) -> Converter:
    def convert(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
        return {"type": kind, **_window(cfg, "pool_size")}

    return convert


def _global_pool(kind: str) -> Converter:
    def convert(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
        return {"type": kind, "keepdims": cfg.get("keepdims", False)}

    return convert


def _zeropad(nd: int) -> Converter:
    def convert(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
        pad = _ints(cfg.get("padding", 1))
        if (
            nd == 1
            and isinstance(pad, list)
            and len(pad) == 2
            and all(isinstance(p, int) for p in pad)
        ):
            pad = [pad]  # ZeroPadding1D's (left, right)
        elif isinstance(pad, list):
            pad = [_ints(p) for p in pad]
        return {"type": f"zeropad{nd}d", "padding": pad}

    return convert


def _cropping(nd: int) -> Converter:
    def convert(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
        crop = _ints(cfg.get("cropping", 0 if nd == 2 else 1))
        if isinstance(crop, list):
            crop = [_ints(c) for c in crop]
        return {"type": f"cropping{nd}d", "cropping": crop}

    return convert


def _upsample(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    mode = cfg.get("interpolation", "nearest")
    return {
        "type": "upsample",
        "scale": _ints(cfg.get("size", 2)),
        "mode": mode if mode in ("nearest", "bilinear", "bicubic") else "bilinear",
    }


def _batchnorm(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    reader.channel_axis(cfg.get("axis", -1), "axis")
    return {
        "type": "batchnorm",
        "eps": cfg.get("epsilon", 1e-3),
        "momentum": cfg.get("momentum", 0.99),
        "scale": cfg.get("scale", True),
        "center": cfg.get("center", True),
    }


def _layernorm(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    reader.channel_axis(cfg.get("axis", -1), "axis")
    scale, center = cfg.get("scale", True), cfg.get("center", True)
    if scale != center or cfg.get("rms_scaling"):
        raise _Unknown("LayerNormalization with only one of scale and center")
    return {"type": "layernorm", "eps": cfg.get("epsilon", 1e-3), "affine": bool(scale)}


def _groupnorm(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    """GroupNormalization; ``groups=-1`` (a group per channel) is instance normalization."""
    reader.channel_axis(cfg.get("axis", -1), "axis")
    scale, center = cfg.get("scale", True), cfg.get("center", True)
    if scale != center:
        raise _Unknown("GroupNormalization with only one of scale and center")
    groups = cfg.get("groups", 32)
    out = {"eps": cfg.get("epsilon", 1e-3), "affine": bool(scale)}
    if groups == -1:
        return {"type": "instancenorm", **out}
    return {"type": "groupnorm", "groups": groups, **out}


def _prelu(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    """PReLU: a slope per position and channel, but for the ``shared_axes`` (Keras's default:
    none shared, written out as ``[]`` so the file does not depend on the framework's default)."""
    shared = cfg.get("shared_axes")
    shared = [] if shared is None else _ints(shared)
    return {"type": "prelu", "shared_axes": shared if isinstance(shared, list) else [shared]}


def _concat(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    reader.channel_axis(cfg.get("axis", -1), "axis")
    return {"type": "concat"}


def _relu(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    top, slope = cfg.get("max_value"), cfg.get("negative_slope") or 0
    if slope:
        return {"type": "leaky_relu", "negative_slope": slope}
    return {"type": "relu6" if top == 6 else "relu"}


def _leaky_relu(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return {"type": "leaky_relu", "negative_slope": slope}


def _activation_layer(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    # Every activation cnncli knows is a type of its own (as the zoo writes Keras's models).
    return {"type": _activation(cfg.get("activation")) or "identity"}


def _dropout(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    return {"type": "dropout", "rate": cfg.get("rate", 0.5)}


def _dense(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    return {"type": "dense", "units": cfg.get("units"), **_common(cfg, reader)}


def _rescaling(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    return {
        "type": "rescaling",
        "scale": _ints(cfg.get("scale")),
        "offset": _ints(cfg.get("offset", 0.0)),
    }


def _normalization(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "normalization", "axis": _ints(cfg.get("axis", -1))}
    if isinstance(out["axis"], list) and len(out["axis"]) == 1:
        out["axis"] = out["axis"][0]
    for key in ("mean", "variance"):
        if cfg.get(key) is not None:
            out[key] = _ints(cfg[key])
    if cfg.get("invert"):
        out["invert"] = True
    return out


def _resizing(cfg: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    mode = cfg.get("interpolation", "bilinear")
    return {
        "type": "upsample",
        "size": [cfg.get("height"), cfg.get("width")],
        "mode": mode if mode in ("nearest", "bilinear", "bicubic") else "bilinear",
    }


def _fixed(kind: str) -> Converter:
    return lambda cfg, reader: {"type": kind}


def _registry() -> dict[str, Converter]:
    table: dict[str, Converter] = {
        "Dense": _dense,
        "BatchNormalization": _batchnorm,
        "LayerNormalization": _layernorm,
        "Dropout": _dropout,
        "AlphaDropout": _dropout,
        "GaussianDropout": _dropout,
        "Activation": _activation_layer,
        "ReLU": _relu,
        "LeakyReLU": _leaky_relu,
        "ELU": lambda cfg, reader: {"type": "elu", "alpha": cfg.get("alpha", 1.0)},
        "PReLU": _prelu,
        "GroupNormalization": _groupnorm,
        "Softmax": _fixed("softmax"),
        "Add": _fixed("add"),
        "Multiply": _fixed("multiply"),
        "Concatenate": _concat,
        "Flatten": _fixed("flatten"),
        "Reshape": lambda cfg, reader: {"type": "reshape", "shape": _ints(cfg.get("target_shape"))},
        "Permute": lambda cfg, reader: {"type": "permute", "dims": _ints(cfg.get("dims"))},
        "Rescaling": _rescaling,
        "Normalization": _normalization,
        "Resizing": _resizing,
        "UpSampling1D": _upsample,
        "UpSampling2D": _upsample,
        "UpSampling3D": _upsample,
    }
    # Identity at inference, the shape unchanged: noise, augmentation, regularisation.
    for name in (
        "Identity",
        "GaussianNoise",
        "ActivityRegularization",
        "Masking",
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
        "RandomBrightness",
    ):
        table[name] = _fixed("identity")
    for nd in (1, 2, 3):
        table[f"Conv{nd}D"] = _conv(f"conv{nd}d")
        table[f"Conv{nd}DTranspose"] = _conv(f"convtranspose{nd}d")
        table[f"DepthwiseConv{nd}D"] = _depthwise(f"depthwise_conv{nd}d")
        table[f"MaxPooling{nd}D"] = _pool(f"maxpool{nd}d")
        table[f"AveragePooling{nd}D"] = _pool(f"avgpool{nd}d")
        table[f"GlobalAveragePooling{nd}D"] = _global_pool("global_avgpool")
        table[f"GlobalMaxPooling{nd}D"] = _global_pool("global_maxpool")
        table[f"ZeroPadding{nd}D"] = _zeropad(nd)
        table[f"Cropping{nd}D"] = _cropping(nd)
        table[f"SpatialDropout{nd}D"] = _dropout
        if nd < 3:
            table[f"SeparableConv{nd}D"] = _depthwise(f"separable_conv{nd}d")
    # Keras 2's spellings.
    table |= {
        "Convolution2D": table["Conv2D"],
        "Deconvolution2D": table["Conv2DTranspose"],
        "MaxPool2D": table["MaxPooling2D"],
        "AvgPool2D": table["AveragePooling2D"],
        "GlobalAvgPool2D": table["GlobalAveragePooling2D"],
        "GlobalMaxPool2D": table["GlobalMaxPooling2D"],
        "SeparableConvolution2D": table["SeparableConv2D"],
    }
    return table


#: Every Keras class the reader maps onto a cnncli type.
KERAS_LAYERS = _registry()


# -- the model → model-format data ----------------------------------------------------------------


@dataclass
class _Scope:
    """Where a graph's layers go: the list they are written to, the names its calls get, what
    its inputs are called, what its calls' ``shared:`` and ``trainable:`` say, and the prefix
    of their rows in the summary (None: not checked, a later call of a nested model)."""

    out: list[dict[str, Any]]
    names: dict[tuple[str, int], str]
    inputs: dict[Ref, str]
    shared: bool | str
    trainable: bool
    rows: str | None


class _Reader:
    """Turns one Keras model description into model-format data (see the module docstring)."""

    def __init__(self, label: str, options: ReadOptions) -> None:
        self.label = label
        self.options = options
        self.layout = "channels_last"
        self.blocks: dict[str, dict[str, Any]] = {}
        self.block_of: dict[int, str] = {}  # id(nested config) → its block's name
        #: Row name → (Keras class, the input shapes Keras recorded) for the cross-check.
        self.expected: dict[str, tuple[str, list[Shape | None]]] = {}
        self.shared: list[str] = []
        self.inlined: list[str] = []
        self.renamed = 0
        self.input_note = ""
        #: Opaque rows whose weights only the weights file knows (counted 0, said in a note).
        self.unknown_weights: list[str] = []
        #: Activations inside a layer cnncli has no name for (shown without them).
        self.unknown_activations: list[str] = []
        #: The name of the layer being converted (for notes).
        self.current = ""
        #: Outputs of inlined nested models: (model, call, output) → our name.
        self.outputs: dict[Ref, str] = {}
        #: The rank (batch included) of the input of the layer being converted, when recorded.
        self.rank: int | None = None
        #: A channel axis given as a number the rank is not known for yet: checked after the
        #: build (row name → (axis, Keras class)).
        self.deferred_axis: int | None = None
        self.axis_checks: dict[str, tuple[int, str]] = {}

    def notes(self) -> list[str]:
        out = []
        if self.shared:
            out.append(
                f"shared weights: {', '.join(self.shared)} (parameters counted once, on the "
                "first call; the rows NAME-call2, … share them)"
            )
        if self.inlined:
            out.append(
                f"nested models with several inputs or outputs inlined: {', '.join(self.inlined)} "
                "(their layers named MODEL_LAYER)"
            )
        if self.renamed:
            out.append(f"{self.renamed} layer names changed to letters, digits, _ and -")
        if self.unknown_weights:
            out.append(
                f"weights of {', '.join(self.unknown_weights)} not known: only the weights file "
                "holds them, which cnncli does not read; the totals leave them out"
            )
        if self.unknown_activations:
            out.append(
                "activations cnncli has no name for, left out of the type column (they change no "
                f"number): {', '.join(self.unknown_activations)}"
            )
        if self.input_note:
            out.append(self.input_note)
        return out

    # -- entry points --------------------------------------------------------------------------
    def model(self, config: Any) -> dict[str, Any]:
        class_name, cfg = self._top(config)
        try:
            self.layout = self._layout(cfg)
            graph = _Graph.of(class_name, cfg)
            inputs = self._inputs(graph)
            scope = _Scope([], self._names(graph), {}, False, True, "")
            for ref, name in zip(graph.inputs, inputs, strict=True):
                scope.inputs[ref] = name
            self._graph(graph, scope)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise ModelError(
                f"{self.label}: the model description is not what Keras writes ({_reason(err)})"
            ) from None
        data: dict[str, Any] = {
            "name": str(cfg.get("name") or Path(self.label).stem),
            "inputs": inputs,
            "layout": self.layout,
            "framework": "keras",
        }
        if self.blocks:
            data["blocks"] = self.blocks
        data["layers"] = scope.out
        return data

    def _top(self, config: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(config, dict):
            raise ModelError(f"{self.label}: the model description is not a JSON object")
        class_name = config.get("class_name")
        cfg = config.get("config")
        if class_name not in _MODEL_CLASSES and isinstance(cfg, dict) and "layers" not in cfg:
            raise ModelError(
                f"{self.label}: the model is a subclassed Keras model ({show(class_name)}): its "
                "layers are Python code the file does not describe; build it with the "
                "functional API or Sequential, or export it to ONNX"
            )
        if isinstance(cfg, list):  # Keras 1/2.0 Sequential: the layers themselves
            cfg = {"layers": cfg}
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
            raise ModelError(
                f"{self.label}: not a Keras model description (no config with layers); save the "
                "model with model.save('model.keras')"
            )
        return str(class_name), cfg

    def _layout(self, cfg: dict[str, Any]) -> str:
        """Channels first when every layer with a ``data_format`` says so (Flatten's says only
        how it orders values); a mix cannot be one layout."""
        formats: dict[str, str] = {}
        for entry in _walk(cfg):
            fmt = (entry.get("config") or {}).get("data_format")
            if fmt is None or entry.get("class_name") == "Flatten":
                continue
            if fmt not in ("channels_first", "channels_last"):
                raise ModelError(
                    f"{self.label}: layer {show(_entry_name(entry))} has data_format "
                    f"{show(fmt)}; Keras writes channels_last or channels_first"
                )
            formats.setdefault(fmt, _entry_name(entry))
        if len(formats) > 1:
            raise ModelError(
                f"{self.label}: layers mix data formats (layer {show(formats['channels_first'])} "
                f"is channels_first, {show(formats['channels_last'])} channels_last); cnncli reads "
                "a model in one layout"
            )
        return "channels_first" if "channels_first" in formats else "channels_last"

    def _inputs(self, graph: _Graph) -> dict[str, list[int]]:
        """The model's inputs and their shapes (``--input`` fills sizes the file leaves open)."""
        shapes: dict[str, Shape | None] = {}
        for name, _, _ in graph.inputs:
            if name:
                shapes[name] = _batch_shape(graph.entries[name])
            else:  # a Sequential without an InputLayer: its first layer's declared shape
                first = next(iter(graph.entries.values()))
                seq = graph.cfg.get("build_input_shape")
                shapes["input"] = _batch_shape(first) or _shape(seq)
        given = self.options.input_shape
        if given is not None and len(shapes) != 1:
            raise UsageError(
                f"{{opt:input}} sets one input, but the model has {len(shapes)} "
                f"({', '.join(shapes)}); their sizes must be fixed in the file"
            )
        return {name: self._sizes(name, shape, given) for name, shape in shapes.items()}

    def _sizes(self, name: str, shape: Shape | None, given: tuple[int, ...] | None) -> list[int]:
        order = "H,W,C" if self.layout == "channels_last" else "C,H,W"
        shown = _shown(shape or ())
        if given is not None:
            if shape is not None and not _fits(given, shape):
                raise UsageError(
                    f"{{opt:input}} {','.join(map(str, given))} does not fit the input "
                    f"{show(name)} {shown} of {self.label} ({self.layout.replace('_', ' ')}: "
                    f"{order}); give the sizes in that order, the fixed ones as they are"
                )
            self.input_note = f"input sizes from --input: {tuple(given)}"
            return list(given)
        if shape is None or None in shape:
            raise ModelError(
                f"{self.label}: the input {show(name)} has "
                f"{'no fixed shape' if shape is None else 'open sizes ' + shown}; give them with "
                f"{{opt:input}} in the model's order ({order}), e.g. {{opt:input}} "
                + ("224,224,3" if self.layout == "channels_last" else "3,224,224")
            )
        return [int(d) for d in shape]  # type: ignore[arg-type]

    # -- names ----------------------------------------------------------------------------------
    def _names(self, graph: _Graph, prefix: str = "") -> dict[tuple[str, int], str]:
        """Our name for every call: Keras's name (made a word if need be), ``-call2``… for
        later calls of the same layer; unique within the graph."""
        # "input" names the input of a block; a model's InputLayers keep their own names.
        taken = {"input", *(name for name, _, _ in graph.inputs)}
        out: dict[tuple[str, int], str] = {}
        for name, calls in graph.calls.items():
            base = prefix + _word(name)
            if base != prefix + name:
                self.renamed += 1
            for k in range(len(calls)):
                mine = base if k == 0 else f"{base}-call{k + 1}"
                while mine in taken:
                    mine += "_"
                taken.add(mine)
                out[name, k] = mine
        return out

    def _ref(self, ref: Ref, scope: _Scope, graph: _Graph) -> str:
        """Our name for a tensor a call reads."""
        if ref in scope.inputs:
            return scope.inputs[ref]
        name, node, index = ref
        if (name, node) not in scope.names:
            raise KeyError(f"a call reads {name!r} (call {node}), which the model does not have")
        if index == 0:
            return scope.names[name, node]
        if ref in self.outputs:  # output `index` of an inlined nested model
            return self.outputs[ref]
        raise ModelError(
            f"{self.label}: layer {show(name)} ({graph.entries[name].get('class_name')}) has "
            "several outputs; cnncli reads layers with one output"
        )

    # -- graphs and calls -----------------------------------------------------------------------
    def _graph(self, graph: _Graph, scope: _Scope) -> None:
        for name, calls in graph.calls.items():
            entry = graph.entries[name]
            for k, call in enumerate(calls):
                refs = [self._ref(ref, scope, graph) for ref, _ in call]
                shapes = [shape for _, shape in call]
                if k == 1:
                    self.shared.append(scope.names[name, 0])
                if _is_model(entry):
                    self._nested(entry, k, refs, scope)
                else:
                    self._call(entry, k, refs, shapes, scope, graph.shapes.get((name, k, 0)))

    def _flags(self, entry: dict[str, Any], k: int, scope: _Scope) -> tuple[bool, bool | str]:
        """A call's ``trainable`` (the layer's and every enclosing model's) and ``shared`` (a
        later call of a layer, or any call inside a later call of a nested model)."""
        trainable = scope.trainable and (entry.get("config") or {}).get("trainable") is not False
        return trainable, True if k else scope.shared

    def _call(
        self,
        entry: dict[str, Any],
        k: int,
        refs: list[str],
        shapes: list[Shape | None],
        scope: _Scope,
        out_shape: Shape | None,
    ) -> None:
        mine = scope.names[_entry_name(entry), k]
        self.deferred_axis = None
        layer = self._layer(entry, shapes, out_shape, mine)
        if self.deferred_axis is not None and scope.rows is not None:
            self.axis_checks[scope.rows + mine] = (self.deferred_axis, str(entry["class_name"]))
        layer["name"] = mine
        layer["input"] = refs[0] if len(refs) == 1 else refs
        trainable, shared = self._flags(entry, k, scope)
        if not trainable:
            layer["trainable"] = False
        if shared is not False:
            layer["shared"] = shared
        scope.out.append(layer)
        if scope.rows is not None and k == 0:
            self.expected[scope.rows + mine] = (str(entry.get("class_name")), shapes)

    def _layer(
        self,
        entry: dict[str, Any],
        shapes: list[Shape | None],
        out_shape: Shape | None,
        mine: str,
    ) -> dict[str, Any]:
        """One Keras layer as the format's layer (an ``opaque`` one when cnncli has no type)."""
        class_name = str(entry.get("class_name"))
        cfg = entry.get("config") or {}
        convert = KERAS_LAYERS.get(class_name)
        first = shapes[0] if shapes else None
        self.rank = None if first is None else len(first) + 1
        self.current = mine
        try:
            if convert is None:
                raise _Unknown(class_name)
            return convert(cfg, self)
        except _Unknown:
            return self._opaque(class_name, cfg, shapes, out_shape, mine)

    def _opaque(
        self,
        class_name: str,
        cfg: dict[str, Any],
        shapes: list[Shape | None],
        out_shape: Shape | None,
        mine: str,
    ) -> dict[str, Any]:
        """A layer cnncli has no type for: its output shape as Keras recorded it (None: known
        only when the model runs), its weights where the config tells them."""
        op = class_name
        detail = cfg.get("function") or cfg.get("activation")  # TFOpLambda, Activation
        if isinstance(detail, str):
            op = f"{class_name}({detail})"
        if out_shape is None:
            raise ModelError(
                f"{self.label}: layer {show(mine)} ({op}) has no cnncli type, and the file does "
                "not record its output shape (Keras 3 records it where a later layer reads it); "
                "see docs/model-format.md for the Keras classes cnncli reads"
            )
        params = _opaque_params(class_name, cfg, shapes)
        if params is None:
            self.unknown_weights.append(mine)
        return {
            "type": "opaque",
            "op": op,
            "shape": [0 if d is None else d for d in out_shape],
            "params": params or 0,
        }

    def _nested(self, entry: dict[str, Any], k: int, refs: list[str], scope: _Scope) -> None:
        """A nested model: a block call (one input, one output), else inlined."""
        inner = _Graph.of(str(entry.get("class_name")), entry["config"])
        if len(inner.inputs) != 1 or len(inner.outputs) != 1:
            self._inline(inner, entry, k, refs, scope)
            return
        if len(refs) != 1:
            raise ModelError(
                f"{self.label}: nested model {show(_entry_name(entry))} is called with "
                f"{len(refs)} tensors but takes one"
            )
        mine = scope.names[_entry_name(entry), k]
        trainable, shared = self._flags(entry, k, scope)
        block = self.block_of.get(id(entry))
        if block is None:
            block = self._block(entry, inner, scope, mine, trainable)
        call: dict[str, Any] = {"block": block, "name": mine, "input": refs[0]}
        if self.blocks[block].get("params"):
            call["shared"] = shared
        scope.out.append(call)

    def _block(
        self, entry: dict[str, Any], inner: _Graph, scope: _Scope, mine: str, trainable: bool
    ) -> str:
        """The block of a nested model, written once (its calls share it)."""
        name = _word(_entry_name(entry))
        while name in self.blocks:
            name += "_"
        self.block_of[id(entry)] = name
        block: dict[str, Any] = {"layers": []}
        self.blocks[name] = block  # taken before its layers: a model nested inside sees it
        if len(entry.get("inbound_nodes") or [None]) > 1 or scope.shared is not False:
            block["params"] = {"shared": False}
        inner_scope = _Scope(
            block["layers"],
            self._names(inner),
            {inner.inputs[0]: "input"},
            "$shared" if "params" in block else False,
            trainable,
            None if scope.rows is None else f"{scope.rows}{mine}.",
        )
        self._graph(inner, inner_scope)
        out = self._ref(inner.outputs[0], inner_scope, inner)
        if out == "input":  # a model that passes its input on
            block["layers"].append({"type": "identity", "name": "output"})
        elif block["layers"][-1].get("name") != out:
            block["output"] = out
        return name

    def _inline(
        self, inner: _Graph, entry: dict[str, Any], k: int, refs: list[str], scope: _Scope
    ) -> None:
        """A nested model with several inputs or outputs: its layers in the outer list, named
        ``MODEL_LAYER``; its outputs readable as the outer model reads them."""
        name = _entry_name(entry)
        mine = scope.names[name, k]
        if k == 0:
            self.inlined.append(mine)
        if len(refs) != len(inner.inputs):
            raise ModelError(
                f"{self.label}: nested model {show(name)} is called with {len(refs)} tensors "
                f"but takes {len(inner.inputs)}"
            )
        trainable, shared = self._flags(entry, k, scope)
        inner_scope = _Scope(
            scope.out,
            self._names(inner, f"{mine}_"),
            dict(zip(inner.inputs, refs, strict=True)),
            shared,
            trainable,
            scope.rows if k == 0 else None,
        )
        self._graph(inner, inner_scope)
        for i, ref in enumerate(inner.outputs):
            self.outputs[name, k, i] = self._ref(ref, inner_scope, inner)
        scope.names[name, k] = self.outputs[name, k, 0]

    def channel_axis(self, axis: Any, what: str) -> None:
        """Normalisation and concatenation work along the channels only: -1 or the channel
        axis's number counted with the batch, as Keras 2 writes it (``[3]``)."""
        if isinstance(axis, list) and len(axis) == 1:
            axis = axis[0]
        rank = self.rank
        if self.layout == "channels_first":
            ok = axis == 1 or (rank == 2 and axis == -1)
        elif rank is None and isinstance(axis, int) and axis > 0:
            # Keras 2's .h5 records no shapes: checked once cnncli knows the rank.
            self.deferred_axis = axis
            ok = True
        else:
            ok = axis == -1 or (rank is not None and axis == rank - 1)
        if not ok:
            raise _Unknown(f"{what} {show(axis)}")


#: Keras classes cnncli has no type for that hold no weights.
_WEIGHTLESS = frozenset(
    {
        "Subtract",
        "Average",
        "Maximum",
        "Minimum",
        "Activation",
        "ThresholdedReLU",
        "Lambda",
        "TFOpLambda",
        "SlicingOpLambda",
        "CenterCrop",
        "RandomCrop",
        "UnitNormalization",
        "Concatenate",
    }
)


def _opaque_params(class_name: str, cfg: dict[str, Any], shapes: list[Shape | None]) -> int | None:
    """The weights of a layer cnncli has no type for, where its config tells them (None: only
    the weights file knows, and cnncli does not read it)."""
    if class_name in _WEIGHTLESS:
        return 0
    if class_name == "Embedding":
        size, width = cfg.get("input_dim"), cfg.get("output_dim")
        return size * width if isinstance(size, int) and isinstance(width, int) else None
    return None


def _walk(cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every layer description of a model, nested models' layers included (iteratively)."""
    stack = [cfg]
    while stack:
        for entry in _layers(stack.pop()):
            yield entry
            inner = entry.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
                stack.append(inner)


def _word(name: str) -> str:
    """A Keras name as the format takes names (``tf.math.add`` → ``tf_math_add``)."""
    if _NAME.match(name):
        return name
    word = re.sub(r"[^\w\-]", "_", name)
    return word if _NAME.match(word) else f"_{word}"


def _reason(err: Exception) -> str:
    if isinstance(err, KeyError):
        return f"missing {err}"
    return str(err) or type(err).__name__


# -- the cross-check -------------------------------------------------------------------------------


def _cross_check(summary: Summary, reader: _Reader) -> None:
    """Every input shape Keras recorded must be the one cnncli computes (None: any size), and a
    channel axis Keras 2 gave as a number must be the last one."""
    label = reader.label
    for row in summary.layers():
        if row.name in reader.axis_checks:
            axis, class_name = reader.axis_checks[row.name]
            rank = len(row.input_shapes[0]) + 1
            if axis != rank - 1:
                raise ModelError(
                    f"{label}: layer {show(row.name)} ({class_name}) works along axis "
                    f"{axis} of its {rank}-axis input {_shown(row.input_shapes[0])}, not along "
                    "the channels; cnncli has no type for that"
                )
        if row.name not in reader.expected:
            continue
        class_name, shapes = reader.expected[row.name]
        for got, keras in zip(row.input_shapes, shapes, strict=False):
            if keras is not None and not _fits(got, keras):
                raise ModelError(
                    f"{label}: layer {show(row.name)} ({class_name}): Keras recorded its "
                    f"input as {_shown(keras)}, cnncli computes {_shown(got)}; this is a bug "
                    "in cnncli's Keras reader: please report it with the file"
                )


def _fits(sizes: Sequence[int], known: Sequence[int | None]) -> bool:
    """``sizes`` have ``known``'s rank and equal every size it fixes (None: any)."""
    return len(sizes) == len(known) and all(
        k is None or k == s for s, k in zip(sizes, known, strict=True)
    )


def _shown(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
