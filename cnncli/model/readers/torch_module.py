"""PyTorch modules for ``cnncli summary path/to/file.py:NAME --input 3,224,224`` (or
``package.module:NAME``).

NAME is an ``nn.Module`` class (built with no arguments) or a function returning a module. The
source is imported — its code runs, by design — and the module is built on PyTorch's ``meta``
device, so no weights are allocated and nothing is computed. It is then turned into
model-format data (:mod:`cnncli.model.readers`), so that the one builder computes every shape,
parameter and MAC, exactly as for a YAML file:

- :mod:`torch.fx` traces ``forward`` into a graph. Every call of a ``torch.nn`` module and every
  function or method on tensors (``add``, ``cat``, ``flatten``, ``view``, ``permute``, ``mean``,
  ``chunk``, adaptive pooling …) becomes a layer with the module's options and its real
  connections; what cnncli has no type for becomes an ``opaque`` layer with the shape torch
  computes and the parameters it holds (its work is not counted, and the totals say so).
  Module nesting becomes blocks (one per module instance with one input and one output), so
  ``--depth`` folds them as it folds a YAML model's.
- When fx cannot trace ``forward`` (control flow that depends on tensor values), forward hooks
  record each leaf module in call order instead; connectivity is then inferred as sequential,
  and a note says so.

Either way every layer's output shape is run through PyTorch on the meta device as well, and
the reader compares PyTorch's shapes and parameter counts with cnncli's: a difference is a bug in
this reader and is reported, never papered over.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cnncli.errors import ModelError, UsageError
from cnncli.model.layers import closest
from cnncli.model.readers import PYTHON_SOURCE, ReadModel, ReadOptions, model_data
from cnncli.model.readers._torch_graph import (
    FxReader,
    HookReader,
    fname,
    model_data_of,
    record_calls,
)
from cnncli.model.readers._torch_ops import Net, own_tensors

_R = TypeVar("_R")


def read_torch(source: str, options: ReadOptions) -> ReadModel:
    """Import ``source`` (``file.py:NAME`` or ``package.module:NAME``), build NAME on the meta
    device and read it into model-format data (see the module docstring)."""
    match = PYTHON_SOURCE.match(source)
    if match is None:
        raise ModelError(
            f"{source}: name a PyTorch module as path/to/file.py:NAME or package.module:NAME"
        )
    where, name = match["where"], match["name"]
    if where.endswith(".py") and not Path(where).is_file():
        raise ModelError(
            f"{source}: no such file {where}; give path/to/file.py:NAME or package.module:NAME"
        )
    shape = _input_shape(source, options)
    torch = _torch(source)
    with _user_code():
        module = _import_source(where, source)
        model = _construct(_lookup(module, name, where, torch), name, source, torch)
        net = _read(model, source, shape, torch)
    if not net.entries:
        raise ModelError(
            f"{source}: {name}'s forward pass has no layer cnncli can show (it hands its input "
            "on unchanged)"
        )
    net.notes += _unused_note(model, net.counted) + _shared_note(net) + _mixed_note(net)
    data, full = model_data_of(name, shape, net)
    _cross_check(data, full, source, net)
    return ReadModel(model_data(data), source, net.notes)


def _read(model: Any, source: str, shape: tuple[int, ...], torch: Any) -> Net:
    """The forward pass's layers: from torch.fx's graph, or from forward hooks."""
    graph, why = _trace(model, torch)
    runner = _Runner(model if graph is None else graph, source, shape, torch)
    if graph is not None:
        net = FxReader(
            model, graph, runner.run(lambda x: _graph_values(graph, model, x)), torch
        ).read()
    else:
        net = HookReader(
            runner.run(lambda x: record_calls(model, lambda: model(x), torch)), shape, torch
        ).read()
        net.notes.insert(0, _fallback_note(why))
    net.notes[1 if graph is None else 0 : 0] = runner.notes
    return net


# -- the source ------------------------------------------------------------------------------


def _input_shape(source: str, options: ReadOptions) -> tuple[int, ...]:
    shape = options.input_shape
    if shape is None:
        raise UsageError(
            f"{source} is PyTorch code, which gives no input size; add {{opt:input}} with the "
            "input's shape without the batch, e.g. --input 3,224,224"
        )
    if not 1 <= len(shape) <= 4 or min(shape) < 1:
        raise UsageError(
            f"{{opt:input}} {','.join(map(str, shape))}: give channels and 0 to 3 spatial sizes "
            "≥ 1 without the batch, e.g. 3,224,224"
        )
    return shape


def _torch(source: str) -> Any:
    try:
        import torch
        import torch.fx
    except ImportError:
        raise ModelError(
            f"{source}: reading a PyTorch module needs PyTorch, which is not installed; "
            "install it (pip install torch), or export the model to ONNX and summarise the .onnx"
        ) from None
    return torch


@contextlib.contextmanager
def _user_code() -> Iterator[None]:
    """Run the user's code with its prints on stderr (stdout carries the summary, maybe JSON)
    and its warnings (PyTorch's tracer warnings among them) silenced."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else ""
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _import_source(where: str, source: str) -> Any:
    """The Python module ``where`` names: a file (its folder on ``sys.path`` meanwhile, as
    ``python file.py`` has it) or an importable module."""
    if where.endswith(".py"):
        path = Path(where)
        modname = "_cnncli_source_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise ModelError(f"{source}: {where} cannot be imported as Python source")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module  # dataclasses and pickling look classes up there
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            raise ModelError(f"{source}: importing {where} failed: {_first_line(err)}") from None
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as err:
        if err.name is not None and where.startswith(err.name):
            raise ModelError(
                f"{source}: there is no module {where} (and no file {where}.py); give "
                "path/to/file.py:NAME or an importable package.module:NAME"
            ) from None
        raise ModelError(f"{source}: importing {where} failed: {_first_line(err)}") from None
    except (Exception, SystemExit) as err:
        raise ModelError(f"{source}: importing {where} failed: {_first_line(err)}") from None


def _module_classes(module: Any, torch: Any) -> list[str]:
    """The ``nn.Module`` classes a Python module defines (or, failing that, holds)."""
    found = {
        k: v
        for k, v in vars(module).items()
        if isinstance(v, type) and issubclass(v, torch.nn.Module) and not k.startswith("_")
    }
    own = [k for k, v in found.items() if v.__module__ == module.__name__]
    return sorted(own or found)


def _lookup(module: Any, name: str, where: str, torch: Any) -> Any:
    if hasattr(module, name):
        return getattr(module, name)
    classes = _module_classes(module, torch)
    listing = (
        f"its nn.Module classes: {', '.join(classes)}"
        if classes
        else "it defines no nn.Module class"
    )
    raise ModelError(f"{where} has no {name}{closest(name, classes)} ({listing})")


def _construct(obj: Any, name: str, source: str, torch: Any) -> Any:
    """``NAME()`` on the meta device: a class built with no arguments, or a function called."""
    nn = torch.nn
    if isinstance(obj, nn.Module):
        return obj.to("meta").eval()
    is_class = isinstance(obj, type)
    if (is_class and not issubclass(obj, nn.Module)) or not callable(obj):
        raise ModelError(
            f"{source}: {name} is a {type(obj).__name__ if not is_class else 'class'} that is "
            "not an nn.Module; name an nn.Module class or a function returning a module"
        )
    _check_no_arguments(obj, name, source)
    model = _build_on_meta(obj, name, source, torch)
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{source}: {name}() returned {type(model).__name__}, not an nn.Module; name a class "
            "or a function that returns a module"
        )
    return model.to("meta").eval()


def _check_no_arguments(obj: Any, name: str, source: str) -> None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return  # a builtin without a signature: calling it says more
    needed = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if needed:
        raise ModelError(
            f"{source}: {name} needs arguments ({', '.join(needed)}), and cnncli builds it with "
            f"none; write a function that returns {name}({', '.join(f'{n}=…' for n in needed)}) "
            "and name that function instead"
        )


def _build_on_meta(obj: Any, name: str, source: str, torch: Any) -> Any:
    """``obj()`` with every tensor on the meta device; a constructor that reads tensor values
    (RegNet computes its widths with tensors) is built again with only the parameters and
    buffers moved to meta as they are registered."""
    try:
        with torch.device("meta"):
            return obj()
    except (NotImplementedError, RuntimeError) as err:
        if "meta" not in str(err).lower():
            raise ModelError(f"{source}: building {name}() failed: {_first_line(err)}") from None
    except Exception as err:
        raise ModelError(f"{source}: building {name}() failed: {_first_line(err)}") from None
    try:
        with _weights_on_meta(torch):
            return obj()
    except Exception as err:
        raise ModelError(f"{source}: building {name}() failed: {_first_line(err)}") from None


@contextlib.contextmanager
def _weights_on_meta(torch: Any) -> Iterator[None]:
    """Parameters and buffers go to the meta device as modules register them."""
    module = torch.nn.Module
    register_parameter, register_buffer = module.register_parameter, module.register_buffer

    def parameter(self: Any, pname: str, param: Any) -> None:
        if param is not None:
            param = torch.nn.Parameter(param.to("meta"), param.requires_grad)
        register_parameter(self, pname, param)

    def buffer(self: Any, bname: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(self, bname, None if tensor is None else tensor.to("meta"), persistent)

    module.register_parameter, module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        module.register_parameter, module.register_buffer = register_parameter, register_buffer


def _trace(model: Any, torch: Any) -> tuple[Any, str]:
    """``forward`` as an fx graph (its optional arguments at their defaults), or None and why
    fx could not trace it."""
    try:
        optional = {
            p.name: p.default
            for p in list(inspect.signature(model.forward).parameters.values())[1:]
            if p.default is not p.empty
        }
    except (TypeError, ValueError):
        optional = {}
    try:
        graph = torch.fx.symbolic_trace(model, concrete_args=optional or None)
    except Exception as err:
        return None, _first_line(err)
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    if len(placeholders) - len(optional) != 1:
        return None, f"forward takes {len(placeholders)} inputs and cnncli gives it one tensor"
    return graph.to("meta"), ""  # with the constants fx made while tracing


def _failing_node(node: Any, model: Any, args: Any) -> str:
    """Where in the graph the forward pass failed: the module (as PyTorch prints it) or the
    function, and the shapes of the tensors it was given."""
    import torch

    shapes = ", ".join(str(tuple(a.shape)) for a in _tensors(args) if isinstance(a, torch.Tensor))
    if node.op == "call_module":
        what = f"{node.target} = {str(model.get_submodule(node.target)).splitlines()[0]}"
    else:
        what = fname(node.target) or str(node.target)
    return f" at {what}" + (f", given {shapes}" if shapes else "")


def _tensors(value: Any) -> list[Any]:
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return [value]


class _Failed(Exception):
    """The forward pass failed (``where``: at which module or function, when known)."""

    def __init__(self, err: BaseException, where: str = "") -> None:
        super().__init__(str(err))
        self.err, self.where = err, where


def _graph_values(graph: Any, model: Any, x: Any) -> dict[str, Any]:
    """Every fx node's value: tensors with PyTorch's shapes, plain values (sizes)."""
    import torch.fx

    values: dict[str, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            try:
                out = super().run_node(n)
            except Exception as err:
                args = self.fetch_args_kwargs_from_env(n)
                raise _Failed(err, _failing_node(n, model, args)) from None
            values[n.name] = out
            return out

    Recorder(graph).run(x)
    return values


class _Runner:
    """Runs the forward pass on the meta device; when it cannot run there (it reads tensor
    values: an ``if`` on a sum, ``.item()``), once on the CPU, with weights made as the modules
    initialise them (seed 0) and a standard normal input (seed 0)."""

    def __init__(self, model: Any, source: str, shape: tuple[int, ...], torch: Any) -> None:
        self.model, self.source, self.shape, self.torch = model, source, shape, torch
        floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
        self.dtype = floats[0] if floats else torch.get_default_dtype()
        self.notes: list[str] = []

    def run(self, fn: Callable[[Any], _R]) -> _R:
        torch = self.torch
        try:
            with torch.no_grad():
                return fn(torch.empty((1, *self.shape), device="meta", dtype=self.dtype))
        except Exception as err:
            failed = err if isinstance(err, _Failed) else _Failed(err)
            if "meta" not in str(failed.err).lower():
                raise self.failure(failed) from None
        size = _materialize(self.model, torch)
        x = torch.randn((1, *self.shape), generator=torch.Generator().manual_seed(0))
        try:
            with torch.no_grad():
                out = fn(x.to(self.dtype))
        except Exception as err:
            raise self.failure(err if isinstance(err, _Failed) else _Failed(err)) from None
        self.notes.append(
            f"forward needs tensor values, so it ran once on the CPU, with {size:,} bytes of "
            "weights initialised as the modules do (seed 0), on a standard normal input (seed "
            "0); what depends on the values (a branch taken, a size) is that input's"
        )
        return out

    def failure(self, failed: _Failed) -> ModelError:
        return ModelError(
            f"{self.source}: the forward pass fails on an input of shape {(1, *self.shape)} "
            f"(--input {','.join(map(str, self.shape))}){failed.where}: "
            f"{_first_line(failed.err)}"
        )


def _materialize(model: Any, torch: Any) -> int:
    """The meta model's weights allocated on the CPU and initialised; their bytes."""
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.zero_()
        for mod in model.modules():
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
    return sum(int(t.numel()) * t.element_size() for _, t in own_tensors(model, ""))


# -- notes -----------------------------------------------------------------------------------


def _fallback_note(why: str) -> str:
    return (
        f"torch.fx could not trace forward ({why}); read with forward hooks instead: one row "
        "per leaf module in call order, connectivity inferred as sequential (branches and "
        "merges are not seen)"
    )


def _unused_note(model: Any, counted: set[str]) -> list[str]:
    """Parameters the forward pass never used (GoogLeNet's auxiliary classifiers in eval mode)."""
    missing = [(n, t) for n, t in own_tensors(model, "") if n not in counted]
    if not missing:
        return []
    total = sum(int(t.numel()) for _, t in missing)
    owners = sorted({n.split(".", 1)[0] for n, _ in missing})
    shown = ", ".join(owners[:4]) + (f" and {len(owners) - 4} more" if len(owners) > 4 else "")
    return [
        f"{total:,} parameters and buffers of {shown} are not used by the forward pass on this "
        "input and not counted (PyTorch's model.parameters() includes them)"
    ]


def _shared_note(net: Net) -> list[str]:
    if not net.shared:
        return []
    calls = ", ".join(f"{kind} ×{n}" for kind, n in sorted(net.shared.items()))
    return [
        f"modules called more than once share their weights: counted at the first call; the "
        f"later calls are opaque rows ({calls})"
    ]


def _mixed_note(net: Net) -> list[str]:
    if not net.mixed:
        return []
    shown = ", ".join(net.mixed[:4]) + (
        f" and {len(net.mixed) - 4} more" if len(net.mixed) > 4 else ""
    )
    return [
        f"{shown} hold{'s' if len(net.mixed) == 1 else ''} trainable and frozen numbers together "
        "(requires_grad=False on some parameters, or buffers of an opaque layer); cnncli counts "
        "such a layer's as trainable"
    ]


# -- PyTorch against cnncli ------------------------------------------------------------------


def _cross_check(data: dict[str, Any], full: dict[str, str], source: str, net: Net) -> None:
    """Build the model data with cnncli's arithmetic and compare every layer with PyTorch:
    output shape, parameters and buffers, trainable ones. A difference is a bug in this reader
    (or in cnncli's arithmetic), and is said so."""
    from cnncli.model.build import build

    summary = build(model_data(data), source)
    rows = {r.name: r for r in summary.layers()}
    for e in net.entries:
        row = rows[full[e.name]]
        ours_shape = row.output_shapes or row.output_shape
        if (ours_shape, row.params, row.trainable_params) != (e.shape, e.params, e.trainable):
            raise ModelError(
                f"{source}: layer {row.name} ({row.type}): cnncli computes output {ours_shape} "
                f"with {row.params:,} parameters ({row.trainable_params:,} trainable), PyTorch "
                f"{e.shape} with {e.params:,} ({e.trainable:,}); cnncli's PyTorch reader got "
                "this layer wrong, please report it"
            )
