"""The protobuf wire format of an ONNX file, just enough to leave its weights unread.

A convolution needs its weight's dims, not its numbers: every large float initializer is cut
down to its header (name, element type, dims) before :mod:`onnx` parses the rest, so a 100 MB
ResNet-50 is walked field by field in milliseconds and its weights are never read nor mapped
into the process. Where each stripped tensor lies in the file is kept, for the rare layer that
needs a float tensor's numbers (a Resize scale stored large).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnncli.errors import ModelError
from cnncli.outputs import describe_os_error

#: ONNX's element types that hold weights (float32, float16, double, bfloat16, the float8s).
FLOAT_TYPES = frozenset({1, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23})

#: Float tensors above this many bytes are read without their data (a layer needs their dims
#: only; shape inference too), so a 100 MB ResNet-50 is read in milliseconds, not a second.
_STRIP_BYTES = 256


class _FileBytes:
    """A file's bytes, read on demand: single bytes from 64 KiB chunks (the skim reads field
    headers one byte at a time), ranges with one ``pread`` each. The weights between the
    headers are never read, nor mapped into the process (as an ``mmap`` would map the pages
    around each header)."""

    CHUNK = 1 << 16

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.chunks: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return os.pread(self.fd, key.stop - key.start, key.start)
        index, offset = divmod(key, self.CHUNK)
        chunk = self.chunks.get(index)
        if chunk is None:
            if len(self.chunks) > 16:
                self.chunks.clear()
            chunk = self.chunks[index] = os.pread(self.fd, self.CHUNK, index * self.CHUNK)
        if offset >= len(chunk):
            raise _WireError  # the file ended early
        return chunk[offset]


@contextlib.contextmanager
def opened(path: Path, source: str) -> Iterator[_FileBytes]:
    """The model file, to be read field by field (see :func:`_skim`)."""
    try:
        with path.open("rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ModelError(f"{source}: not a regular file; give an .onnx model file")
            if info.st_size == 0:
                raise ModelError(f"{source}: the file is empty; give an .onnx model file")
            yield _FileBytes(fh.fileno(), info.st_size)
    except FileNotFoundError:
        raise ModelError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{source}: is a folder; give an .onnx model file") from None
    except OSError as err:
        raise ModelError(f"cannot read {source}: {describe_os_error(err)}") from None


_NOT_ONNX = "not an ONNX model, or a damaged one (truncated, or not ONNX at all); export it again"


def load(onnx: Any, buf: Any, source: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The ModelProto without the data of its large float tensors (see :func:`_skim`), and
    where each stripped tensor lies in the file."""
    # protobuf's DecodeError, without needing its type stubs.
    decode_error = importlib.import_module("google.protobuf.message").DecodeError
    try:
        light, stripped = _skim(buf)
        model = onnx.load_model_from_string(light)
    except (_WireError, decode_error, ValueError, RuntimeError):
        raise ModelError(f"{source}: {_NOT_ONNX}") from None
    if not model.graph.node or not model.opset_import or model.ir_version < 1:
        raise ModelError(
            f"{source}: not an ONNX model (no graph, operator set or IR version in it); "
            "export it again"
        )
    return model, stripped


class _WireError(Exception):
    """Bytes that are not a well-formed protobuf message."""


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _WireError
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """A message's fields: (field number, field start, payload start, field end)."""
    pos = start
    while pos < end:
        first = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        payload = pos
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, payload = _varint(buf, pos, end)
            pos = payload + length
        elif wire == 5:
            pos += 4
        else:
            raise _WireError  # groups (3, 4) are not in ONNX's messages
        if pos > end or number == 0:
            raise _WireError
        yield number, first, payload, pos


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field, encoded."""
    out = bytearray()
    for value in ((number << 3) | 2, len(payload)):
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


#: ModelProto.graph, GraphProto.initializer; TensorProto's fields that describe a tensor
#: without holding its numbers (dims, data_type, name, doc_string, external_data,
#: data_location, metadata_props) and its data_type and name.
_GRAPH, _INITIALIZER = 7, 5
_TENSOR_HEADER = frozenset({1, 2, 8, 12, 13, 14, 16})
_DATA_TYPE, _NAME = 2, 8


def _skim(buf: Any) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The model's bytes with every large float initializer cut down to its header.

    Protobuf length-prefixes each field, so a 100 MB ResNet-50 is walked field by field in
    milliseconds and its weights are never read; :mod:`onnx` then parses the few hundred
    kilobytes left. Returns those bytes and, per stripped tensor, where the whole
    tensor lies in the file (read again only if a layer needs its numbers).
    """
    end = len(buf)
    top: list[bytes] = []
    graph: list[bytes] = []
    stripped: dict[str, tuple[int, int]] = {}
    for number, first, payload, last in _fields(buf, 0, end):
        if number != _GRAPH:
            top.append(buf[first:last])
            continue
        for g_number, g_first, g_payload, g_last in _fields(buf, payload, last):
            if g_number == _INITIALIZER:
                graph.append(_skim_tensor(buf, g_first, g_payload, g_last, stripped))
            else:
                graph.append(buf[g_first:g_last])
    return b"".join(top) + _field(_GRAPH, b"".join(graph)), stripped


def _skim_tensor(
    buf: Any, first: int, start: int, end: int, stripped: dict[str, tuple[int, int]]
) -> bytes:
    """One initializer: whole when small or not float, else its header only."""
    if end - start <= _STRIP_BYTES:
        return bytes(buf[first:end])
    header: list[bytes] = []
    dtype, name = 0, ""
    for number, f_first, payload, f_last in _fields(buf, start, end):
        if number in _TENSOR_HEADER:
            header.append(buf[f_first:f_last])
        if number == _DATA_TYPE:
            dtype, _ = _varint(buf, payload, f_last)
        elif number == _NAME:
            name = bytes(buf[payload:f_last]).decode("utf-8", "replace")
    if dtype not in FLOAT_TYPES:
        return bytes(buf[first:end])
    stripped[name] = (start, end)
    return _field(_INITIALIZER, b"".join(header))
