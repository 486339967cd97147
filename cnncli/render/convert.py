"""Writers of ``cnncli convert``: model-format data as YAML text, a model as PyTorch source.

- :func:`yaml_text`: the data of :func:`cnncli.model.convert.model_data` as a model file in the
  zoo's style, one layer per line (``- {type: conv2d, filters: 64, kernel: 7}``), a long layer
  as a block mapping, a comment on top saying where it came from and what it counts.
- :func:`pytorch_source`: a readable ``nn.Module`` file: each layer the module
  :func:`cnncli.model.torch_check.recipe_for` gives (the one mapping ``--verify`` builds),
  the helper classes of :mod:`cnncli.model.torch_modules` it needs copied in, and a ``forward``
  with one line per layer and its output shape as a comment.

Neither imports torch: a PyTorch file can be written where PyTorch is not installed.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cnncli.model.build import Summary
from cnncli.model.convert import FlatModel, flatten
from cnncli.model.torch_check import Recipe, recipe_for

#: Lines longer than this are written as a block mapping (one key per line).
LINE_WIDTH = 100


# -- YAML -------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe writer without anchors (each value written where it is used)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _flow(value: Any) -> str:
    """A value in YAML's flow style on one line (``{type: conv2d, kernel: 3}``, ``[1, 7]``)."""
    text = yaml.dump(
        [value],
        Dumper=_Dumper,
        default_flow_style=True,
        width=2**31,
        allow_unicode=True,
        sort_keys=False,
    )
    return text.strip()[1:-1]  # the value without the list around it


def _wrapped(lead: str, value: dict[str, Any]) -> list[str]:
    """``lead`` then a flow mapping, wrapped at its commas under :data:`LINE_WIDTH`, the
    continuation lines aligned after the ``{`` (the zoo's style)."""
    parts = [f"{key}: {_flow(v)}" for key, v in value.items()]
    if not parts:
        return [f"{lead}{{}}"]
    start = f"{lead}{{"
    lines, line = [], start
    for i, part in enumerate(parts):
        piece = part + ("}" if i == len(parts) - 1 else ",")
        if line != start and len(line) + 1 + len(piece) > LINE_WIDTH:
            lines.append(line)
            line = " " * len(start) + piece
        else:
            line += piece if line == start else f" {piece}"
    lines.append(line)
    return lines


def _entry(item: dict[str, Any], indent: str) -> list[str]:
    """One ``- {…}`` list entry."""
    return _wrapped(f"{indent}- ", item)


def _mapping(key: str, value: dict[str, Any], indent: str) -> list[str]:
    return _wrapped(f"{indent}{key}: ", value)


def yaml_text(data: dict[str, Any], header: list[str]) -> str:
    """A model file for ``data`` (model-format data), ``header`` as comment lines on top."""
    lines = [f"# {h}" if h else "#" for h in header]
    for key in ("name", "input", "layout", "framework"):
        if key in data:
            lines.append(f"{key}: {_flow(data[key])}")
    if "inputs" in data:
        lines += _mapping("inputs", data["inputs"], "")
    if data.get("blocks"):
        lines.append("blocks:")
        for i, (name, block) in enumerate(data["blocks"].items()):
            if i:
                lines.append("")
            lines.append(f"  {name}:")
            if "params" in block:
                lines += _mapping("params", block["params"], "    ")
            lines.append("    layers:")
            for item in block["layers"]:
                lines += _entry(item, "      ")
        lines.append("")
    lines.append("layers:")
    for item in data["layers"]:
        lines += _entry(item, "  ")
    return "\n".join(lines) + "\n"


def yaml_header(summary: Summary, source: str) -> list[str]:
    """What the comment on top of a converted file says: its source and its totals."""
    t = summary.totals
    return [
        f"{summary.name}: written by `cnncli convert` from {source}; it counts as the source:",
        f"{t.params:,} params ({t.trainable_params:,} trainable, {t.non_trainable_params:,} "
        f"non-trainable), {t.macs:,} MACs.",
        *(f"Read from the source: {note}" for note in summary.notes),
        "The format: docs/model-format.md of cnncli.",
    ]


# -- PyTorch source ---------------------------------------------------------------------------

#: Attributes of torch.nn.Module a layer's attribute must not replace (a test compares this
#: with dir(nn.Module)).
MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
    }
)
#: Names the written file uses itself.
_SOURCE_NAMES = frozenset({"x", "self", "torch", "nn", "F", "annotations", "model", "y"})

#: torch.nn's defaults, left out of the written constructor calls (tests/test_convert.py
#: compares them with the classes' signatures). Keyed by class family (``Conv`` for Conv2d).
TORCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "Conv": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "ConvTranspose": {
        "stride": 1,
        "padding": 0,
        "output_padding": 0,
        "groups": 1,
        "bias": True,
        "dilation": 1,
    },
    "MaxPool": {"padding": 0, "dilation": 1, "ceil_mode": False},
    "AvgPool": {"padding": 0, "ceil_mode": False},
    "BatchNorm": {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True},
    "LayerNorm": {"eps": 1e-5, "elementwise_affine": True},
    "Linear": {"bias": True},
    "GroupNorm": {"eps": 1e-5, "affine": True},
    "InstanceNorm": {"eps": 1e-5, "momentum": 0.1, "affine": False, "track_running_stats": False},
    "ELU": {"alpha": 1.0},
    "Softplus": {"beta": 1.0, "threshold": 20.0},
    "LocalResponseNorm": {"alpha": 1e-4, "beta": 0.75, "k": 1.0},
}


def _family(cls: str) -> str:
    return re.sub(r"[123]d$", "", cls)


def _number(value: float) -> str:
    """A float as a reader would write it: 1 − 0.99 is 0.01, not 0.010000000000000009."""
    return repr(float(f"{value:.12g}"))


def _value(value: Any, collapse: bool) -> str:
    """Python source of a recipe argument (``collapse``: (3, 3) → 3, as torch.nn takes it)."""
    if isinstance(value, Recipe):
        return _call(value)
    if isinstance(value, tuple):
        if collapse and value and len(set(value)) == 1 and not isinstance(value[0], tuple):
            return _value(value[0], collapse)
        inner = ", ".join(_value(v, collapse) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, collapse) for v in value) + "]"
    if isinstance(value, float) and not isinstance(value, bool):
        return _number(value)
    return repr(value)


def _is_default(recipe: Recipe, key: str, value: Any) -> bool:
    family = _family(recipe.cls)
    if family in ("MaxPool", "AvgPool") and key == "stride":
        return bool(value == recipe.arg(0, "kernel_size"))  # torch's default: the kernel
    defaults = TORCH_DEFAULTS.get(family, {})
    if key not in defaults:
        return False
    if isinstance(value, tuple) and value and len(set(value)) == 1:
        value = value[0]
    return type(value) is type(defaults[key]) and bool(value == defaults[key])


def _call(recipe: Recipe) -> str:
    """A recipe as its constructor call: ``nn.Conv2d(3, 64, kernel_size=7, stride=2)``."""
    collapse = not recipe.helper
    parts = [_value(a, collapse) for a in recipe.args]
    parts += [
        f"{k}={_value(v, collapse)}"
        for k, v in recipe.kwargs
        if recipe.helper or not _is_default(recipe, k, v)
    ]
    return f"{'' if recipe.helper else 'nn.'}{recipe.cls}({', '.join(parts)})"


def _identifier(name: str, taken: set[str]) -> str:
    """A layer name as a Python attribute (``layer1.0.conv1`` → ``layer1_0_conv1``)."""
    word = re.sub(r"[^0-9A-Za-z_]", "_", name) or "layer"
    if word[0].isdigit():
        word = f"layer_{word}"
    if keyword.iskeyword(word) or word in MODULE_ATTRIBUTES or word in _SOURCE_NAMES:
        word += "_"
    out, n = word, 1
    while out in taken:
        n += 1
        out = f"{word}_{n}"
    taken.add(out)
    return out


@functools.cache
def helper_sources() -> dict[str, str]:
    """Each class of :mod:`cnncli.model.torch_modules` and its source, in file order, read from
    the file without importing it (that would import torch)."""
    path = Path(__file__).resolve().parent.parent / "model" / "torch_modules.py"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.parse(text).body
        if isinstance(node, ast.ClassDef)
    }


def class_name(model: str) -> str:
    """The module class a model's name gives (``mnist-convnet`` → ``MnistConvnet``)."""
    words = re.findall(r"[0-9A-Za-z]+", model)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    if name[0].isdigit():
        name = f"Model{name}"
    if name in helper_sources() or name in _SOURCE_NAMES or keyword.iskeyword(name):
        name += "Model"
    return name


@dataclass(frozen=True)
class PySource:
    """A written PyTorch file: its text, its class and each layer's attribute (or None for
    merges, computed in ``forward``)."""

    text: str
    class_name: str
    attributes: dict[str, str | None]


def _shape_comment(flat: FlatModel, p: int) -> str:
    out = flat.nodes[p].out
    assert out is not None
    if out.outputs:
        shapes = [str(s.dims(False)) for s in out.outputs]
        return f"{len(shapes)} × {shapes[0]}" if len(set(shapes)) == 1 else " + ".join(shapes)
    return str(out.shape.dims(False))


class _Forward:
    """The lines of ``forward``: chains through ``x``, other values by their layer's name."""

    def __init__(self, flat: FlatModel, attributes: dict[int, str | None], names: list[str]):
        self.flat = flat
        self.layers = flat.layers
        self.attributes = attributes
        self.names = names
        consumers: dict[int, list[int]] = {}
        for p, layer in enumerate(self.layers):
            for q, _ in layer.refs:
                consumers.setdefault(q, []).append(p)
        self.consumers = consumers
        taken = set(names)
        self.inputs = []
        for j, name in enumerate(flat.inputs):
            chained = j == 0 and self._chains(-1 - j, 0)
            self.inputs.append(
                "x" if chained else _identifier(name + "s" * (name == "input"), taken)
            )

    def _chains(self, q: int, nxt: int) -> bool:
        """``q``'s value is read once, by the next layer, as a whole tensor: it lives in ``x``."""
        if self.consumers.get(q) != [nxt] or nxt >= len(self.layers):
            return False
        if (q, None) not in self.layers[nxt].refs:
            return False
        if q < 0:
            return True
        return self.layers[q].training_only == self.layers[nxt].training_only

    def _var(self, q: int, k: int | None, reader: int) -> str:
        if q < 0:
            base = self.inputs[-1 - q]
        else:
            base = "x" if reader == q + 1 and self._chains(q, reader) else self.names[q]
        return base if k is None else f"{base}[{k}]"

    def _expr(self, p: int) -> str:
        layer = self.layers[p]
        args = [self._var(q, k, p) for q, k in layer.refs]
        attribute = self.attributes[p]
        if attribute is not None:
            return f"self.{attribute}({args[0]})"
        if layer.type == "add":
            return " + ".join(args)
        if layer.type == "multiply":
            return " * ".join(args)
        return f"torch.cat([{', '.join(args)}], dim=1)"

    def lines(self, outputs: list[int]) -> list[str]:
        params = ", ".join(f"{v}: torch.Tensor" for v in self.inputs)
        many = len(outputs) > 1
        returns = "tuple[torch.Tensor, ...]" if many else "torch.Tensor"
        aux = [
            p
            for p, layer in enumerate(self.layers)
            if layer.training_only and not self.consumers.get(p)
        ]
        if aux:
            returns = "torch.Tensor | tuple[torch.Tensor, ...]"
        out = [f"    def forward(self, {params}) -> {returns}:"]
        guarded = False
        # The one output, computed last, goes through x too: `return x`.
        last = len(self.layers) - 1
        ends_in_x = outputs == [last] and not aux
        for p, layer in enumerate(self.layers):
            if layer.training_only != guarded:
                guarded = layer.training_only
                if guarded:
                    out.append("        if self.training:  # training-only layers")
            chained = self._chains(p, p + 1) or (ends_in_x and p == last)
            target = "x" if chained else self.names[p]
            pad = "            " if guarded else "        "
            out.append(f"{pad}{target} = {self._expr(p)}  # {_shape_comment(self.flat, p)}")
        main = "x" if ends_in_x else ", ".join(self.names[p] for p in outputs)
        if aux:
            extra = ", ".join(self.names[p] for p in aux)
            out += ["        if self.training:", f"            return {main}, {extra}"]
        out.append(f"        return {main}")
        return out


def pytorch_source(summary: Summary, source: str) -> PySource:
    """A readable PyTorch ``nn.Module`` file that builds ``summary``'s model."""
    flat = flatten(summary)
    cls = class_name(summary.name)
    taken: set[str] = set()
    names = [_identifier(layer.name, taken) for layer in flat.layers]
    nodes = {n.name: n for n in summary.nodes}
    recipes: list[Recipe | None] = []
    for node in flat.nodes:
        shapes = [nodes[i].out.shape for i in node.inputs]  # type: ignore[union-attr]
        recipes.append(recipe_for(node, shapes, summary.ctx))
    attributes = {p: (names[p] if r is not None else None) for p, r in enumerate(recipes)}
    helpers: set[str] = set()
    for r in recipes:
        if r is not None:
            helpers |= r.helpers()
    forward = _Forward(flat, attributes, names)
    position = {layer.name: p for p, layer in enumerate(flat.layers)}
    outputs = [position[n] for n in summary.outputs]
    init = ["    def __init__(self) -> None:", "        super().__init__()"]
    init += [
        f"        self.{names[p]} = {_call(r)}" for p, r in enumerate(recipes) if r is not None
    ]
    text = "\n".join(
        [
            *_preamble(summary, source, cls, helpers),
            f"class {cls}(nn.Module):",
            f'    """{summary.name}: {len(flat.layers)} layers, input {_input_text(summary)}."""',
            "",
            *init,
            "",
            *forward.lines(outputs),
            "",
            "",
            *_main(summary, cls, len(outputs)),
        ]
    )
    return PySource(
        text + "\n",
        cls,
        {layer.name: attributes[p] for p, layer in enumerate(flat.layers)},
    )


def _input_dims(summary: Summary, name: str) -> tuple[int, ...]:
    """A layer input's shape channels first (what PyTorch computes), read from its node."""
    node = next(n for n in summary.nodes if n.name == name)
    assert node.out is not None
    return node.out.shape.dims(False)


def _input_text(summary: Summary) -> str:
    shapes = [
        "(N, " + ", ".join(str(d) for d in _input_dims(summary, name)) + ")"
        for name in summary.inputs
    ]
    return " and ".join(shapes) + " (channels first)"


def _preamble(summary: Summary, source: str, cls: str, helpers: set[str]) -> list[str]:
    """The module docstring, the imports and the helper classes the model uses."""
    t = summary.totals
    bodies = [text for name, text in helper_sources().items() if name in helpers]
    uses_f = any("F." in b for b in bodies)
    lines = [
        f'"""{summary.name} as a PyTorch module, written by `cnncli convert` from {source}.',
        "",
        f"Input: {_input_text(summary)}. {t.trainable_params:,} trainable parameters,",
        f"{t.non_trainable_params:,} non-trainable (batchnorm running statistics),",
        f"{t.macs:,} multiply-accumulates per sample (cnncli's count: convolution and",
        "dense layers, bias excluded). Build it without allocating weights on PyTorch's meta",
        "device:",
        "",
        '    with torch.device("meta"):',
        f"        model = {cls}()",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import torch",
    ]
    if uses_f:
        lines.append("import torch.nn.functional as F  # noqa: N812")
    lines += ["from torch import nn", "", ""]
    for body in bodies:
        lines += [body, "", ""]
    return lines


def _main(summary: Summary, cls: str, outputs: int) -> list[str]:
    zeros = ", ".join(
        "torch.zeros(1, " + ", ".join(str(d) for d in _input_dims(summary, name)) + ")"
        for name in summary.inputs
    )
    shown = "[tuple(t.shape) for t in y]" if outputs > 1 else "tuple(y.shape)"
    return [
        'if __name__ == "__main__":',
        "    # One forward pass on zeros; prints the output shape.",
        f"    model = {cls}().eval()",
        "    with torch.no_grad():",
        f"        y = model({zeros})",
        f"    print({shown})",
    ]


# -- what cnncli convert writes ---------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """A converted model's text and the one line ``cnncli convert`` says about it."""

    text: str
    report: str


def _totals(summary: Summary) -> str:
    t = summary.totals
    return f"{t.params:,} params, {t.macs:,} MACs"


def write_yaml(summary: Summary, source: str, blocks: bool = True) -> Written:
    """``summary`` as a model file, read back and checked to count exactly as ``summary`` does
    (a difference is a bug of the converter: it raises, nothing is written)."""
    from cnncli.model.build import summarize_text
    from cnncli.model.convert import differences, model_data

    data = model_data(summary, blocks)
    text = yaml_text(data, yaml_header(summary, source))
    again = summarize_text(text, f"{summary.name} (converted)")
    wrong = differences(summary, again)
    if wrong:
        raise RuntimeError(f"the converted model counts differently: {'; '.join(wrong)}")
    made = data.get("blocks", {})
    shape = (
        f"{len(data['layers'])} entries using {len(made)} block{'s' * (len(made) != 1)}"
        if made
        else f"{len(data['layers'])} layers"
    )
    return Written(text, f"{shape}; {_totals(summary)}, the same when read back")


def write_pytorch(summary: Summary, source: str, target: str = "model.py") -> Written:
    """``summary`` as a PyTorch source file (compiled here to be sure it is Python) for the file
    ``target``."""
    made = pytorch_source(summary, source)
    compile(made.text, f"{summary.name}.py", "exec")
    modules = sum(1 for a in made.attributes.values() if a is not None)
    return Written(
        made.text,
        f"class {made.class_name}, {modules} modules; {_totals(summary)} (run it: python {target})",
    )
