"""The ``--then`` stages after a kernel: ReLU, pooling (size, the rows a band reads, values)
and another convolution (``conv:SPEC``, any kernel spec).

Pure NumPy; sizes come from :mod:`cnncli.arithmetic`, like ``cnncli shape --op maxpool``. A
convolution stage is planned and run by :mod:`cnncli.filtering.pipeline` with the run's
padding, stride, dilation and border (the Numba core lives there, not here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cnncli.enums import StageOp
from cnncli.errors import ShapeError, UsageError

if TYPE_CHECKING:
    from cnncli.filtering.kernels import Kernel


@dataclass(frozen=True, eq=False)  # a kernel's weights: compared as objects
class Stage:
    """One ``--then`` stage: ``relu``, pooling with a square window and stride, or ``conv``
    with a kernel (``text``: its spec as typed)."""

    op: StageOp
    size: int = 0
    stride: int = 0
    kernel: Kernel | None = None
    text: str = ""

    @property
    def label(self) -> str:
        """How the report line names the stage: ``relu``, ``maxpool2``, ``conv:sobel-x``."""
        if self.op is StageOp.RELU:
            return "relu"
        if self.op is StageOp.CONV:
            return f"conv:{self.text}"
        return f"{self.op}{self.size}" + (f"s{self.stride}" if self.stride != self.size else "")

    @property
    def slug(self) -> str:
        """What output names say of the stage: ``relu``, ``maxpool2``, ``conv-sobel-x``."""
        if self.op is StageOp.CONV:
            assert self.kernel is not None
            return f"conv-{self.kernel.slug}"
        return self.label

    @property
    def spec(self) -> str:
        """The stage as it is written: ``relu``, ``maxpool:2``, ``avgpool:3:2``, ``conv:box``."""
        if self.op in (StageOp.RELU, StageOp.CONV):
            return self.label
        return f"{self.op}:{self.size}" + (f":{self.stride}" if self.stride != self.size else "")

    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """The size this stage makes of an ``hw`` input, or a ShapeError naming the stage and
        the largest window that fits. Pooling follows PyTorch's MaxPool2d/AvgPool2d (no
        padding, floor mode); the size comes from the arithmetic core, like ``cnncli shape
        --op maxpool``."""
        if self.op is StageOp.RELU:
            return hw
        if self.op is StageOp.CONV:  # a convolution's size depends on the run's options
            raise ValueError("a conv stage is planned by the pipeline (plan_sizes)")
        if self.size > min(hw):
            fits = min(hw)
            raise ShapeError(
                f"stage {self.spec}: the {self.size}×{self.size} window is larger than the "
                f"result it pools ({hw[0]} rows, {hw[1]} columns); use a window of at most "
                f"{fits} ({self.op}:{fits})"
            )
        from cnncli import arithmetic as ar

        geom = ar.resolve(ar.make_spec(hw, self.size, stride=self.stride, op=self.op))
        oh, ow = geom.output_size
        return oh, ow

    def rows_needed(self, r0: int, r1: int) -> tuple[int, int]:
        """The input rows output rows ``r0 .. r1-1`` of this stage read (a band's source)."""
        if self.op is StageOp.RELU:
            return r0, r1
        return r0 * self.stride, (r1 - 1) * self.stride + self.size


def plan_stages(stages: Sequence[Stage], hw: tuple[int, int]) -> tuple[int, int]:
    """The size after every stage, checked before any work (a ShapeError names the stage)."""
    for stage in stages:
        hw = stage.output_size(hw)
    return hw


def parse_stage(text: str) -> Stage:
    """``relu``, ``maxpool:2``, ``avgpool:3:2`` (window 3, stride 2), ``conv:SPEC`` (any kernel
    spec: a name with parameters, an inline matrix, a file; its case kept)."""
    op, _, rest = text.strip().lower().partition(":")
    if op == StageOp.CONV:
        spec = text.strip().partition(":")[2].strip()
        if not spec:
            raise UsageError(
                f"--then {text!r}: write conv:SPEC with a kernel spec, e.g. conv:sobel-x, "
                'conv:"1,0,-1;1,0,-1" or conv:kernel.npy'
            )
        from cnncli.errors import CnnCliError
        from cnncli.filtering.kernels import resolve_kernel

        try:
            kernel = resolve_kernel(spec)
        except CnnCliError as err:  # the same error (and exit code), saying which stage
            raise type(err)(f"--then {text.strip()!r}: {err}") from None
        return Stage(StageOp.CONV, kernel=kernel, text=spec)
    if op == StageOp.RELU and not rest:
        return Stage(StageOp.RELU)
    if op in (StageOp.MAXPOOL, StageOp.AVGPOOL):
        parts = rest.split(":") if rest else ["2"]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) not in (1, 2) or min(values) < 1:
            raise UsageError(
                f"--then {text!r}: write {op}:K or {op}:K:S with a positive window K and stride S"
            )
        return Stage(StageOp(op), values[0], values[-1])
    raise UsageError(
        f"--then {text!r} is not a stage; use relu, maxpool:K[:S], avgpool:K[:S] or conv:SPEC"
    )


def run_stage(stage: Stage, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Apply one stage to an H×W or H×W×C float32 array.

    ReLU works in place on a float32 array (the caller hands over its result). Pooling is
    separable, rows then columns, in float32: one pass per window row over the kept rows, then
    one per window column, so the only new arrays are the row-pooled and the final result
    (no window views reduced over two axes, no float64 copy). Average pooling sums in
    float32, as PyTorch's AvgPool2d does, then divides by K².
    """
    if stage.op is StageOp.CONV:
        raise ValueError("a conv stage is run by the pipeline (with the run's geometry)")
    if stage.op is StageOp.RELU:
        if x.dtype == np.float32 and x.flags.writeable:
            return np.maximum(x, 0, out=x)
        return np.maximum(x, 0, dtype=np.float32)
    oh, ow = stage.output_size((int(x.shape[0]), int(x.shape[1])))
    k, s = stage.size, stage.stride
    x = np.asarray(x, dtype=np.float32)
    reduce = np.maximum if stage.op is StageOp.MAXPOOL else np.add
    last = (oh - 1) * s + 1
    rows = np.array(x[0:last:s], dtype=np.float32)  # a copy: the caller's array stays as it is
    for i in range(1, k):
        reduce(rows, x[i : i + last : s], out=rows)
    last = (ow - 1) * s + 1
    out = np.array(rows[:, 0:last:s], dtype=np.float32)
    for j in range(1, k):
        reduce(out, rows[:, j : j + last : s], out=out)
    del rows
    if stage.op is StageOp.AVGPOOL:
        np.divide(out, np.float32(k * k), out=out)
    assert out.shape[:2] == (oh, ow)  # the arithmetic core and the passes agree by construction
    return out
