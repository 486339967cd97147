"""Finding and reading model files: zoo names, the file-size budget, and the positioned
:class:`Mapping` and :class:`Seq` that YAML texts are read into (by :mod:`cnncli.model.yaml_text`,
imported only when a YAML text is read)."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli import limits
from cnncli.errors import ModelError
from cnncli.model.layers import closest
from cnncli.outputs import describe_os_error

#: The models shipped with cnncli (package data), usable by name: ``cnncli summary resnet50``.
ZOO_DIR = Path(__file__).parent / "zoo"


class Mapping(dict[str, Any]):
    """A YAML mapping that remembers where it starts (1-based line and column) and its size:
    the YAML nodes inside it (itself included), each alias counted as often as it is used."""

    line: int = 0
    col: int = 0
    size: int = 1


class Seq(list[Any]):
    """A YAML sequence that remembers where it starts (1-based line and column)."""

    line: int = 0
    col: int = 0
    size: int = 1


def load_yaml(text: str, label: str) -> Any:
    """Parse YAML safely into :class:`Mapping`, :class:`Seq` and plain scalars, within the work
    budget (:func:`cnncli.model.yaml_text.load_yaml`; PyYAML is imported only here, so reading
    an ONNX, Keras or PyTorch model never loads it)."""
    from cnncli.model import yaml_text

    return yaml_text.load_yaml(text, label)


#: ``variants:`` as a block mapping at the top level (the zoo's style), and one of its keys.
_VARIANTS_BLOCK = re.compile(r"^variants:[ \t]*(?:#[^\n]*)?$", re.M)
_VARIANT_KEY = re.compile(r"([ \t]+)([A-Za-z0-9_][\w.\-]*)[ \t]*:(?:[ \t]|$)")


def declared_variants(text: str, label: str) -> list[str]:
    """The model names a model file's top-level ``variants:`` declares, in file order.

    Read from the text when ``variants:`` is a block mapping with plain keys (every zoo file:
    ~0.1 ms a file, where parsing it is ~3 ms), otherwise from the parsed YAML. A test checks
    both readings agree on every zoo file.
    """
    if not re.search(r"^variants\s*:", text, re.M):
        return []
    found = _VARIANTS_BLOCK.search(text)
    if found is None:  # flow style, an anchor, a comment in an odd place: parse
        return _parsed_variants(text, label)
    names: list[str] = []
    indent: str | None = None
    for line in text[found.end() :].splitlines()[1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            break  # the next top-level key
        key = _VARIANT_KEY.match(line)
        if indent is None and key:
            indent = key.group(1)
        if key and key.group(1) == indent:
            names.append(key.group(2))
        elif indent is None or not line.startswith(indent) or line[len(indent)] not in " \t":
            return _parsed_variants(text, label)  # a line the scan cannot place: parse
    return names or _parsed_variants(text, label)


def _parsed_variants(text: str, label: str) -> list[str]:
    data = load_yaml(text, label)
    variants = data.get("variants") if isinstance(data, dict) else None
    return [str(k) for k in variants] if isinstance(variants, dict) else []


@functools.cache
def _zoo_index() -> dict[str, tuple[Path, str | None]]:
    """Every zoo model name -> (its file, the variant it selects or None).

    A file with ``variants:`` contributes its variants' names; a file without, its own name.
    Built from the files themselves (no list kept by hand), once per process.
    """
    index: dict[str, tuple[Path, str | None]] = {}
    for path in sorted(ZOO_DIR.glob("*.yaml")):
        variants = declared_variants(path.read_text(encoding="utf-8"), str(path))
        for name in variants or [path.stem]:
            index.setdefault(name, (path, name if variants else None))
    return index


def zoo_names() -> list[str]:
    """The models shipped with cnncli, usable by name: variant names, and the names of zoo
    files that declare no variants."""
    return sorted(_zoo_index())


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model for ``cnncli summary --list``."""

    name: str
    file: str
    description: str


def zoo_entries() -> list[ZooEntry]:
    """Every zoo model with its file and description (the variant's, else the file's), read
    from the parsed files without building any model."""
    entries = []
    files: dict[Path, Any] = {}
    for name, (path, variant) in sorted(_zoo_index().items()):
        if path not in files:
            files[path] = load_yaml(read_text(path), str(path))
        data = files[path] if isinstance(files[path], dict) else {}
        text = data.get("description")
        if variant is not None:
            values = (data.get("variants") or {}).get(variant)
            if isinstance(values, dict) and isinstance(values.get("description"), str):
                text = values["description"]
        entries.append(ZooEntry(name, path.name, " ".join(str(text or "").split())))
    return entries


@dataclass(frozen=True)
class ModelRef:
    """A model to summarise: its file, and the variant a zoo name selects (None: the first,
    or the one ``--variant`` names)."""

    path: Path
    variant: str | None = None


def find_model(source: str) -> ModelRef:
    """A model file path, or a zoo name: a variant some zoo file declares, or ``zoo/NAME.yaml``."""
    path = Path(source)
    if path.is_file():
        return ModelRef(path)
    if re.fullmatch(r"[\w.\-]+", source) and source not in (".", ".."):
        own = ZOO_DIR / f"{source}.yaml"
        if own.is_file():  # the common case, without reading the other zoo files
            variants = declared_variants(own.read_text(encoding="utf-8"), str(own))
            return ModelRef(own, source if source in variants else None)
        if source in _zoo_index():
            return ModelRef(*_zoo_index()[source])
    if path.exists():
        raise ModelError(f"{source} is not a file; give a model YAML file or a zoo name")
    names = zoo_names()
    # The zoo has ~80 models: the error names the close ones and where the whole list is.
    listing = f"cnncli summary --list shows the {len(names)} zoo models"
    if "/" in source or "\\" in source or path.suffix in (".yaml", ".yml"):
        raise ModelError(f"no such file: {source}; check the path, or use a zoo name ({listing})")
    raise ModelError(
        f"unknown model {source!r}: no such file and not in the zoo{closest(source, names)} "
        f"({listing})"
    )


def locate(source: str) -> Path:
    """The model file of a path or a zoo name (see :func:`find_model`)."""
    return find_model(source).path


def read_text(path: Path) -> str:
    """The UTF-8 text of a model file, refused past the ``file-bytes`` budget before parsing."""
    max_bytes = limits.get("file-bytes")
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                limits.check("file-bytes", size, f"{path}: the file has {size:,} bytes")
            # Never more than the limit, even when the size lied (/proc files, a growing file).
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            limits.check("file-bytes", len(raw), f"{path}: the file has over {max_bytes:,} bytes")
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not a text (UTF-8) file; give a model YAML file") from None
    except OSError as err:
        raise ModelError(f"cannot read {path}: {describe_os_error(err)}") from None
