"""One filter run on one file: a :class:`FilterSpec` (what to compute) and a :class:`FilterJob`
(which file, written where) go into :func:`filter_file`, which returns a :class:`FilterResult`.

The steps, each a core call: read the picture (refusing absurd sizes from its header first),
plan the geometry and the ``--then`` stages with the arithmetic core and the work budget, pass
the alpha plane through, then make the result band by band (correlate, stages) and hand the
bands to the image writer and, with ``--preview``, to a preview sink the caller supplies.

Importing this module imports no numpy, Pillow or Numba (the command module imports it to build
its spec); they load when a file is filtered.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from cnncli import config
from cnncli.enums import Border, Combine, Layout, Mapping, StageOp
from cnncli.errors import CnnCliError, KernelError, ShapeError, UsageError
from cnncli.limits import LimitError

if TYPE_CHECKING:
    from cnncli.arithmetic import Geometry, PaddingArg
    from cnncli.filtering.kernels import Kernel
    from cnncli.filtering.stages import Stage
    from cnncli.images import Picture

#: Prints one warning line (the command's own ``cnncli: warning: …``).
Warn = Callable[[str], None]


class Preview(Protocol):
    """Where ``--preview`` gathers the result's bands (a renderer: :mod:`cnncli.render.preview`)."""

    def align(self, rows: int) -> int:
        """Rows per band the preview can take (a multiple of its reduction factor)."""
        ...

    def add(self, band: Any) -> None: ...

    def show(self, left_title: str, right_title: str) -> None: ...


#: Makes the preview of one picture: ``(picture, result shape, mapping, value range)``.
PreviewMaker = Callable[["Picture", tuple[int, ...], Mapping, Any], Preview]


class FileFailed(CnnCliError):
    """One input could not be filtered; the message names the file (the batch goes on)."""


@dataclass(frozen=True)
class FilterJob:
    """One input and where its result goes (None: preview only)."""

    source: Path
    output: Path | None
    #: --out-dir: created (with parents) just before the first write, so a run that writes
    #: nothing leaves no empty directory behind.
    make_dir: bool = False
    #: The output was named with -o (--split then names its files after it, not the input).
    named: bool = False


@dataclass(frozen=True, eq=False)  # weight arrays: compared as objects, not element-wise
class FilterSpec:
    """Everything a filter run does to each file, validated: the kernels (one map or more
    each, in order), the ``--then`` stages, the geometry options, and how the result becomes
    pixels."""

    kernels: tuple[Kernel, ...]
    #: How the report line names the filter: ``sobel-x + sobel-y (convolve) → relu``.
    label: str
    stages: tuple[Stage, ...] = ()
    #: How maps are labelled (montage, --print) by the kernel that made them, as typed.
    kernel_labels: tuple[str, ...] = ()
    padding: PaddingArg = "same"
    stride: tuple[int, ...] = (1, 1)
    dilation: tuple[int, ...] = (1, 1)
    border: Border = Border.REFLECT101
    border_value: float = 0.0
    anchor: tuple[int, int] | None = None
    flip: bool = False
    gray: bool = False
    #: None: the kernel's own mapping.
    mapping: Mapping | None = None
    raw: bool = False
    force: bool = False
    preview: bool = False
    #: How 3-D ``.npy`` arrays are read and written (C×H×W with CHW).
    layout: Layout = Layout.HWC
    #: ``--print``: the result's values as aligned matrices on stdout (a ``.csv``/``.txt``
    #: input with no output is printed anyway), within ``columns`` of text.
    print_result: bool = False
    columns: int = 80
    #: ``--as-rgb``: a result of exactly three maps written as one colour picture.
    as_rgb: bool = False
    #: ``--split``: one file per map (per kernel's picture) instead of a montage.
    split: bool = False

    @property
    def kernel(self) -> Kernel:
        """The first kernel (the one with ``--anchor``'s checks, the warm-up's path)."""
        return self.kernels[0]

    @property
    def how(self) -> Mapping:
        """The mapping of the first kernel's float results to pixels."""
        return self.mapping if self.mapping is not None else self.kernel.mapping

    def kernel_slug(self, i: int) -> str:
        """What output names say of kernel ``i``: ``sobel-x``, ``sobel-x-conv``."""
        return self.kernels[i].slug + ("-conv" if self.flip else "")

    @property
    def slug(self) -> str:
        """What output names add to the input's stem: ``sobel-x-conv_relu_maxpool2``;
        several kernels are joined by ``+``."""
        head = "+".join(self.kernel_slug(i) for i in range(len(self.kernels)))
        return "_".join([head] + [st.slug for st in self.stages])

    def maps(self, channels: int) -> int:
        """Maps the kernels make of ``channels``: for each kernel, one per channel for a 2-D
        kernel, one for Cin×kh×kw, Cout for 4-D."""
        return sum(maps_made(k, channels) for k in self.kernels)

    @property
    def convolutions(self) -> tuple[Stage, ...]:
        """The ``--then conv:SPEC`` stages, in order."""
        return tuple(st for st in self.stages if st.op is StageOp.CONV)

    def final_maps(self, channels: int) -> int:
        """Maps of the result: the kernels', then each ``--then conv`` stage's."""
        maps = self.maps(channels)
        for st in self.convolutions:
            assert st.kernel is not None
            maps = maps_made(st.kernel, maps)
        return maps


def maps_made(k: Kernel, channels: int) -> int:
    """Maps one kernel makes of ``channels``: each channel for a 2-D kernel (filtered alike),
    one for C_in×kh×kw (summed), C_out for C_out×C_in×kh×kw."""
    return {2: channels, 3: 1, 4: int(k.matrix.shape[0])}[k.ndim]


def padding_and_border(
    padding: PaddingArg | None, border: Border | None, border_value: float = 0.0
) -> tuple[PaddingArg, Border, float]:
    """The padding and border of a run, the one place their defaults are decided.

    No padding asked for: the picture keeps its size (``same``) with reflect101 borders, as
    OpenCV filters photos. An explicit padding (a number, pairs, ``same``, ``full``) pads with
    zeros, as PyTorch's ``padding_mode='zeros'`` and TensorFlow do (``-p 1`` on the course
    notes' 6×6 example gives PyTorch's ``[-30, 0, 39, 39, 0, -9]``). A border given by the
    user wins either way."""
    if padding is None:
        return "same", border if border is not None else Border.REFLECT101, border_value
    if border is None:
        return padding, Border.CONSTANT, 0.0
    return padding, border, border_value


def border_note(spec: FilterSpec, geometries: Sequence[Geometry]) -> str:
    """What a report line says of the border: ``border zeros`` (or the mode the values
    outside came from), ``no border`` when no layer padded anything (``valid``, ``-p 0``)."""
    from cnncli.enums import border_name

    padded = any(p for g in geometries for pair in g.padding for p in pair)
    return f"border {border_name(spec.border, spec.border_value)}" if padded else "no border"


def build_spec(
    kernel: str | Sequence[str],
    *,
    then: Sequence[str] = (),
    direction: bool = False,
    normalize: bool = False,
    warn: Warn,
    **options: Any,
) -> FilterSpec:
    """The spec of a run from the kernel spec texts (one or several: one map or more each, in
    order), the ``--then`` texts and the other options
    (parsed already: :class:`FilterSpec`'s fields; ``padding`` and ``border`` None when not
    given, see :func:`padding_and_border`). ``direction``: a gradient's direction instead of
    its magnitude; ``normalize``: the kernel divided by its sum (a zero sum is left alone, with
    a warning)."""
    from cnncli.filtering import kernels as kmod
    from cnncli.filtering.stages import parse_stage

    texts = [kernel] if isinstance(kernel, str) else list(kernel)
    if not texts:
        raise UsageError("no kernel given; use -k NAME (e.g. -k sobel), repeatable")
    stages = tuple(parse_stage(t) for t in then)
    found = []
    for text in texts:
        k = kmod.resolve_kernel(text)
        if direction:
            k = kmod.direction_of(k)
        if normalize:
            k, warning = kmod.normalized(k)
            if warning:
                warn(warning)
        _check_anchor(options.get("anchor"), k)
        found.append(k)
    options["padding"], options["border"], options["border_value"] = padding_and_border(
        options.get("padding"), options.get("border"), options.get("border_value", 0.0)
    )
    flip = bool(options.get("flip"))
    names = [t.strip() for t in texts]
    label = " → ".join(
        [" + ".join(names) + (" (convolve)" if flip else "")] + [st.label for st in stages]
    )
    # Maps are labelled by the kernel as typed; a file by its name (a montage has room for
    # little more).
    short_names = tuple(Path(n).name if regular(Path(os.path.expanduser(n))) else n for n in names)
    return FilterSpec(tuple(found), label, stages, short_names, **options)


def _check_anchor(anchor: tuple[int, int] | None, k: Kernel) -> None:
    """``--anchor`` inside the kernel (every kernel, with several)."""
    kh, kw = k.spatial
    if anchor is not None and not (anchor[0] < kh and anchor[1] < kw):
        raise UsageError(
            f"{{opt:anchor}} {anchor[0]},{anchor[1]} is outside the {kh}×{kw} kernel; "
            f"use 0..{kh - 1},0..{kw - 1}"
        )


@dataclass(frozen=True)
class FilterResult:
    """What one file became: ``described`` is the written (or previewed) result's size and
    format, ``mapping`` how floats became pixels (``raw``: they did not)."""

    source: Path
    #: None: only previewed.
    target: Path | None
    described: str
    label: str
    mapping: str
    #: ``border zeros``, ``border reflect101``, ``no border``: see :func:`border_note`.
    border: str = "no border"
    #: The values as aligned matrices (``--print``, or a matrix input with no output).
    printed: str | None = None
    #: With --split: the files written, one per map (``target`` is the name they follow).
    written: tuple[Path, ...] = ()


@dataclass(frozen=True)
class MapGroup:
    """The maps of a result one kernel made, as one picture: a gray map, or the three colour
    channels of a picture a 2-D kernel filtered channel by channel. Its maps are the result's
    last-axis entries ``first .. first+count-1``."""

    label: str
    slug: str
    first: int
    count: int
    mapping: Mapping
    #: The fixed range ``normalize`` maps from (a gradient direction's 0..360), or None.
    value_range: tuple[float, float] | None = None

    def map_labels(self) -> list[str]:
        """One label per map: the group's, with the colour channel when it has three."""
        if self.count == 1:
            return [self.label]
        return [f"{self.label} ({c})" for c in "RGB"[: self.count]]


def map_groups(spec: FilterSpec, channels: int) -> list[MapGroup]:
    """The result's maps, grouped by the kernel that made them, in the result's order (the
    kernels' order): a 2-D kernel gives one map per channel (one colour group for three),
    C_in×kh×kw one map, C_out×C_in×kh×kw one per output channel. Slugs are unique (a kernel
    given twice gets ``-2``), so --split never writes two maps to one file."""
    groups: list[MapGroup] = []
    first = 0
    for i, k in enumerate(spec.kernels):
        made = _kernel_groups(
            k,
            spec.kernel_labels[i] if i < len(spec.kernel_labels) else k.name,
            spec.kernel_slug(i),
            spec.mapping if spec.mapping is not None else k.mapping,
            channels,
        )
        for g in made:
            groups.append(dataclasses.replace(g, first=first + g.first))
        first += sum(g.count for g in made)
    for stage in spec.convolutions:
        groups = _convolved_groups(spec, stage, groups)
    seen: dict[str, int] = {}
    for n, g in enumerate(groups):
        seen[g.slug] = seen.get(g.slug, 0) + 1
        if seen[g.slug] > 1:
            groups[n] = dataclasses.replace(g, slug=f"{g.slug}-{seen[g.slug]}")
    return groups


def _convolved_groups(spec: FilterSpec, stage: Stage, groups: list[MapGroup]) -> list[MapGroup]:
    """The groups after a ``--then conv`` stage: a 2-D kernel convolves each map alike (the
    groups stay, mapped by its rule); C_in×kh×kw makes one map, C_out×C_in×kh×kw C_out."""
    k = stage.kernel
    assert k is not None
    how = spec.mapping if spec.mapping is not None else k.mapping
    if k.ndim == 2:
        return [dataclasses.replace(g, mapping=how, value_range=k.value_range) for g in groups]
    return _kernel_groups(k, stage.label, stage.slug, how, 1)


def _kernel_groups(k: Kernel, name: str, slug: str, how: Mapping, channels: int) -> list[MapGroup]:
    """The groups of one kernel's maps (``first`` counted from the kernel's first map)."""
    if k.ndim == 2 and channels == 3:
        return [MapGroup(name, slug, 0, 3, how, k.value_range)]
    if k.ndim == 2 and channels > 1:
        return [
            MapGroup(f"{name} (channel {c})", f"{slug}-c{c}", c, 1, how, k.value_range)
            for c in range(channels)
        ]
    if k.ndim == 4 and k.matrix.shape[0] > 1:
        return [
            MapGroup(f"{name}[{o}]", f"{slug}-{o}", o, 1, how, k.value_range)
            for o in range(int(k.matrix.shape[0]))
        ]
    return [MapGroup(name, slug, 0, 1, how, k.value_range)]


def short(path: Path | str) -> str:
    """A path as error lines show it: names too long for any file system are cut."""
    text = str(path)
    size = len(os.fsencode(text))
    return text if size <= 255 else f"{text[:60]}… ({size} bytes)"


def regular(path: Path) -> bool:
    """A regular file (not a FIFO, device or directory, which peeking could block on)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# The Numba core: its one warning, and a head start on the first file
# --------------------------------------------------------------------------------------------

_warned: set[str] = set()


def start_run() -> None:
    """A new command run: warnings said once per run may be said again."""
    _warned.clear()


def _core(warn: Warn | None) -> ModuleType:
    """The Numba core (:mod:`cnncli.filtering.correlate`), with its one warning printed once a
    run: no writable cache directory for the compiled code. Without ``warn`` (planning from an
    image's header) the warning waits for the next call: finding it out imports Numba, which
    the warm-up thread is importing meanwhile, and the header's checks do not need it."""
    from cnncli.filtering import correlate

    if warn is None:
        return correlate
    note = correlate.cache_note()
    if note and note not in _warned:
        _warned.add(note)
        warn(note)
    return correlate


#: Threads the warm-up starts are named with this prefix (see :func:`warm_core`).
WARM_THREAD_PREFIX = "cnncli-warm"


class _HideFromThread(MetaPathFinder):
    """Makes ``import scipy`` (or another of ``packages``, and their submodules) fail in one
    thread and in the warm-up's compile threads (named ``cnncli-warm-…``) only."""

    def __init__(self, thread: threading.Thread, packages: frozenset[str]) -> None:
        self.thread = thread
        self.packages = packages

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        current = threading.current_thread()
        if top in self.packages and (
            current is self.thread or current.name.startswith(WARM_THREAD_PREFIX)
        ):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # someone else's import: the other finders decide


@contextmanager
def hidden_in_this_thread(*packages: str) -> Iterator[None]:
    """Imports of ``packages`` fail in the calling thread while inside, unless imported already;
    other threads import them as usual (a finder consulted only for modules not imported yet,
    keyed on the thread, instead of ``sys.modules[package] = None``, which hid them from the
    whole process)."""
    # A package someone uses already stays importable, its submodules too.
    hidden = frozenset(p for p in packages if p not in sys.modules)
    if not hidden:
        yield
        return
    finder = _HideFromThread(threading.current_thread(), hidden)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _unused_by_numba() -> list[str]:
    """What importing Numba imports only to use it in cases a cnncli run is not in: SciPy
    always (Numba checks its version, ~12 ms; a first compile imports ``scipy.linalg``,
    ~0.1 s and ~10 MiB, to see whether ``np.dot`` & co. can use BLAS; the core uses neither);
    PyYAML unless the working directory holds a ``.numba_config.yaml`` for it to read (~20 ms);
    colorama while Numba's messages are not highlighted, as the Numba core sets (~5 ms)."""
    unused = ["scipy"]
    if not os.path.exists(".numba_config.yaml"):
        unused.append("yaml")
    if os.environ.get("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1"):  # any value but ""
        unused.append("colorama")
    return unused


def warm_core(note: Warn | None = None, loaded: Callable[[], None] | None = None) -> None:
    """Import the Numba core and load it from the cache (or, with an empty cache, compile it:
    the first run) in a background thread, while the main thread reads the first image.

    Importing Numba and loading its cache take ~0.5 s and a first compile ~1.5 s more; image
    decoding and PNG encoding release the GIL, so much of that overlaps them. The core is one
    compiled function for every path and pixel type, so what a command will need is all of
    it: the first run of any command compiles once, every later run loads. ``note`` prints
    :data:`~cnncli.filtering.correlate.COMPILE_NOTE` when the first filtering has to wait for
    that compile (never for a cache load, nor in a run that fails before filtering).
    ``loaded`` is called in the warm-up thread once the core is loaded (or failed to load): the
    command's start-up, the imports, is over.
    """

    def run() -> None:
        # Hidden from this thread alone: the main thread (or a library caller's) may still
        # import them.
        try:
            with hidden_in_this_thread(*_unused_by_numba()):
                from cnncli.filtering import correlate

                correlate.load_core(announce=note)
        except Exception:  # only a head start: the real call reports any problem itself
            pass
        finally:
            if loaded is not None:
                loaded()

    threading.Thread(target=run, name=f"{WARM_THREAD_PREFIX}-core", daemon=True).start()


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


def plan_sizes(
    job: FilterJob,
    spec: FilterSpec,
    hw: tuple[int, int],
    channels: int,
    what: str,
    warn: Warn | None,
) -> tuple[list[Geometry], tuple[int, int]]:
    """The filter's geometry (one per kernel, all of one output size, then one per ``--then
    conv`` stage) and the size after the --then stages for an ``hw`` input, with
    every size checked against the work budget before anything is allocated. Errors name the
    file (``what`` describes it) — in a batch, one image can be too small or too large while
    the others fit. ``warn`` None: planned from the header, before decoding (see :func:`_core`)."""
    from cnncli.filtering.stages import plan_stages

    correlate = _core(warn)
    try:
        geoms = [
            correlate.plan_geometry(
                hw,
                k.spatial,
                padding=spec.padding,
                stride=spec.stride,
                dilation=spec.dilation,
                anchor=spec.anchor,
                flip=spec.flip,
            )
            for k in spec.kernels
        ]
        _same_size(spec, geoms)
        maps = spec.maps(channels)
        for geom in geoms:
            correlate.check_work(geom, channels, maps)
        hw = geoms[0].output_size
        for stage in spec.stages:
            if stage.op is not StageOp.CONV:
                hw = plan_stages([stage], hw)
                continue
            # Another convolution: the run's padding, stride, dilation and border.
            assert stage.kernel is not None
            try:
                geom = correlate.plan_geometry(
                    hw, stage.kernel.spatial, padding=spec.padding, stride=spec.stride,
                    dilation=spec.dilation, flip=spec.flip,
                )  # fmt: skip
            except ShapeError as err:
                raise ShapeError(f"stage {stage.spec}: {err}") from None
            made = maps_made(stage.kernel, maps)
            correlate.check_work(geom, maps, made)
            geoms.append(geom)
            hw, maps = geom.output_size, made
        final = (int(hw[0]), int(hw[1]))
    except (ShapeError, LimitError) as err:
        raise type(err)(f"{short(job.source)} ({what}): {err}") from None
    return geoms, final


def _same_size(spec: FilterSpec, geoms: Sequence[Geometry]) -> None:
    """Several kernels stack their maps: each must give the same size, as one layer's do."""
    sizes = [g.output_size for g in geoms]
    if len(set(sizes)) <= 1:
        return
    shown = ", ".join(
        f"{name} ({k.spatial[0]}×{k.spatial[1]}) → {h}×{w}"
        for name, k, (h, w) in zip(spec.kernel_labels, spec.kernels, sizes, strict=True)
    )
    raise ShapeError(
        f"the kernels give maps of different sizes ({shown}); stack kernels of one size, or "
        "keep the size with --padding same"
    )


def alpha_through(
    alpha: Any, geom: Geometry, tap: tuple[int, int], dilation: tuple[int, ...]
) -> Any:
    """The alpha of the input pixel each output pixel is anchored on (``tap``: the kernel tap on
    the output pixel; untouched when the size is kept): the plane follows the same padding and
    stride as the image."""
    import numpy as np

    if alpha is None:
        return None
    ay, ax = geom.axes
    if (
        ay.output == alpha.shape[0]
        and ax.output == alpha.shape[1]
        and ay.stride == ax.stride == 1
        and ay.pad_before == dilation[0] * tap[0]
        and ax.pad_before == dilation[1] * tap[1]
    ):
        return alpha
    rows = np.clip(
        np.arange(ay.output) * ay.stride - ay.pad_before + dilation[0] * tap[0],
        0,
        alpha.shape[0] - 1,
    )
    cols = np.clip(
        np.arange(ax.output) * ax.stride - ax.pad_before + dilation[1] * tap[1],
        0,
        alpha.shape[1] - 1,
    )
    return alpha[np.ix_(rows, cols)]


def filter_file(
    job: FilterJob,
    spec: FilterSpec,
    inputs: Sequence[Path],
    *,
    warn: Warn,
    preview: PreviewMaker | None = None,
) -> FilterResult:
    """Filter one file and write its result (or only preview it); ``inputs``: every file the
    run reads, which no output may replace. Errors name the file; what a reader or the memory
    can still raise becomes one :class:`FileFailed` line (a safety net: the readers name
    their own errors)."""
    from cnncli.outputs import describe_os_error

    name = short(job.source)
    try:
        return _filter_file(job, spec, inputs, warn, preview)
    except MemoryError:
        raise FileFailed(
            f"{name}: out of memory; use a smaller image or lower the work with --limit"
        ) from None
    except EOFError as err:
        raise FileFailed(f"{name}: truncated or damaged file ({err or 'unexpected end'})") from None
    except OSError as err:
        raise FileFailed(f"{name}: cannot read ({describe_os_error(err)})") from None


def _load(job: FilterJob, spec: FilterSpec, inputs: Sequence[Path], warn: Warn) -> Picture:
    """The picture of ``job`` (gray with ``--gray``), refused from its header alone when the
    result would be absurd, and only after its output was found writable."""
    from cnncli import images, limits

    if job.output is not None and not spec.split:  # --split's files: see _check_targets
        images.check_output(job.output, list(inputs), spec.force)
    hint = images.peek(job.source, spec.layout) if regular(job.source) else None
    if hint is not None:
        # From the header alone, before decoding: an absurd result is refused at once (gray
        # or colour is not known yet; one channel is the smallest it can be).
        h, w = hint[1]
        try:
            plan_sizes(job, spec, (h, w), 1, f"{w}×{h}", None)
        except ShapeError:  # reported after decoding, with the picture described in full
            pass
    # --limit pixels=N (or --max-pixels N); left to the reader's own default otherwise.
    pixels = limits.get("pixels")
    pic: Picture = images.load_image(
        job.source,
        max_pixels=None if pixels == limits.LIMITS["pixels"].default else pixels,
        gray=spec.gray,
        warn=warn,
        layout=spec.layout,
    )
    if spec.gray:  # what load_image left (not 8-bit RGB): gray as it is, or refused
        pic = images.to_gray(pic)
    return pic


def _stored(pic: Picture, layout: Layout) -> tuple[int, ...] | None:
    """The shape a 3-D array has in its file (None for pictures and 2-D arrays)."""
    if pic.format != "NPY" or pic.data.ndim != 3:
        return None
    h, w, c = (int(n) for n in pic.data.shape)
    return (c, h, w) if layout is Layout.CHW else (h, w, c)


def check_channels(job: FilterJob, spec: FilterSpec, pic: Picture, warn: Warn) -> None:
    """Every kernel's input channels against the picture's, before any work. PyTorch users
    hold arrays C×H×W, the filter reads them H×W×C unless ``--layout chw``: when the other
    layout would give the kernel its channels, the error says so; an array that looks C×H×W
    (a few rows of many channels) read H×W×C gets a warning."""
    stored = _stored(pic, spec.layout)
    name = short(job.source)
    if stored is not None and spec.layout is Layout.HWC and stored[0] <= 4 < stored[2]:
        warn(
            f"{name} is {'×'.join(map(str, stored))}, read as H×W×C: {stored[0]} rows, "
            f"{stored[1]} columns, {stored[2]} channels; if it is C×H×W, add --layout chw"
        )
    for k in spec.kernels:
        cin = kernel_inputs(k)
        if cin is None or cin == pic.channels:
            continue
        if stored is not None:
            hwc = spec.layout is Layout.HWC
            if (stored[0] if hwc else stored[2]) == cin:
                read, it = ("H×W×C", "C×H×W") if hwc else ("C×H×W", "H×W×C")
                fix = "add --layout chw" if hwc else "drop --layout chw"
                raise KernelError(
                    f"{name}: kernel has {cin} input channels (shape {_dims(k.matrix.shape)}) "
                    f"but the array read as {read} ({_dims(stored)}) has {pic.channels}; it is "
                    f"{it} with {cin} channels: {fix}"
                )
        raise KernelError(channel_mismatch(k, pic.channels, "the image"))
    maps = spec.maps(pic.channels)
    for stage in spec.convolutions:
        assert stage.kernel is not None
        cin = kernel_inputs(stage.kernel)
        if cin is not None and cin != maps:
            raise KernelError(
                f"--then {stage.spec}: "
                + channel_mismatch(stage.kernel, maps, "the result it convolves")
            )
        maps = maps_made(stage.kernel, maps)


def _dims(shape: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in shape)


def kernel_inputs(k: Kernel) -> int | None:
    """The input channels a kernel needs: C_in of a 3-D or 4-D kernel; None for a 2-D kernel,
    which filters every channel alike."""
    return None if k.ndim == 2 else int(k.matrix.shape[0] if k.ndim == 3 else k.matrix.shape[1])


def channel_mismatch(k: Kernel, channels: int, what: str) -> str:
    """The one wording of a kernel whose C_in is not the ``channels`` of ``what``."""
    kh, kw = k.spatial
    fix = (
        f"give a {channels}×{kh}×{kw} kernel, or a 2-D one for every channel"
        if k.ndim == 3
        else f"give a {k.matrix.shape[0]}×{channels}×{kh}×{kw} kernel"
    )
    return (
        f"kernel has {kernel_inputs(k)} input channels (shape {_dims(k.matrix.shape)}) but "
        f"{what} has {channels}; {fix}"
    )


class _Bands:
    """Rows of the final result on demand: the correlation rows they read (through the
    pooling stages, back to front), correlated, then every stage. With a ``--then conv``
    stage the result is made whole once (a convolution's border reads rows from anywhere;
    the work budget bounds every layer) and handed out in bands."""

    def __init__(self, spec: FilterSpec, pic: Picture, geom: Geometry) -> None:
        self.spec, self.pic = spec, pic
        self.height, self.width = geom.output_size
        self.whole: Any = None

    def correlate(self, rows: tuple[int, int]) -> Any:
        """Correlation rows ``rows`` of every kernel, their maps side by side (last axis)."""
        import numpy as np

        from cnncli.filtering.correlate import apply_kernel

        s = self.spec
        outs = []
        for k in s.kernels:
            out = apply_kernel(
                k,
                self.pic.data,
                padding=s.padding,
                stride=s.stride,
                dilation=s.dilation,
                border=s.border,
                border_value=s.border_value,
                anchor=s.anchor,
                flip=s.flip,
                rows=rows,
            )
            want = (rows[1] - rows[0], self.width)
            if out.shape[:2] != want:  # a contract check between two modules, not input
                raise CnnCliError(
                    f"internal error: result {out.shape[:2]} but the arithmetic core says {want}"
                )
            outs.append(out)
        if len(outs) == 1:
            return outs[0]
        return np.concatenate([o if o.ndim == 3 else o[:, :, None] for o in outs], axis=2)

    def layers(self) -> Any:
        """The whole result: the kernels' maps, then every stage, convolutions included."""
        from cnncli.filtering.correlate import apply_kernel
        from cnncli.filtering.stages import run_stage

        s = self.spec
        out = self.correlate((0, self.height))
        for stage in s.stages:
            if stage.op is not StageOp.CONV:
                out = run_stage(stage, out)
                continue
            assert stage.kernel is not None
            out = apply_kernel(
                stage.kernel, out, padding=s.padding, stride=s.stride, dilation=s.dilation,
                border=s.border, border_value=s.border_value, flip=s.flip,
            )  # fmt: skip
        return out[:, :, 0] if out.ndim == 3 and out.shape[2] == 1 else out

    def __call__(self, r0: int, r1: int) -> Any:
        from cnncli.filtering.stages import run_stage

        if self.spec.convolutions:
            if self.whole is None:
                self.whole = self.layers()
            return self.whole[r0:r1]
        spans = [(r0, r1)]
        for stage in reversed(self.spec.stages):
            spans.append(stage.rows_needed(*spans[-1]))
        out = self.correlate(spans[-1])
        for stage in self.spec.stages:
            out = run_stage(stage, out)
        return out[:, :, 0] if out.ndim == 3 and out.shape[2] == 1 else out


def _band_rows(spec: FilterSpec, width: int, maps: int) -> int:
    """Rows of the final result per band: about ``config.BAND_VALUES`` correlation values each
    (pooling reads stride² correlation values per result value)."""
    spread = 1
    for stage in spec.stages:
        spread *= max(1, stage.stride) ** 2
    return max(1, config.BAND_VALUES // max(1, width * maps * spread))


def _spans(height: int, rows: int) -> list[tuple[int, int]]:
    return [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]


def _value_range(
    how: Mapping,
    fixed: tuple[float, float] | None,
    produce: Callable[[int, int], Any],
    spans: list[tuple[int, int]],
) -> Any:
    """The range ``normalize`` maps from: the kernel's own (``fixed``), or the result's min..max found in a
    first pass over the bands, so the result can still be made, mapped and written band by
    band (the correlation runs twice; holding the whole float32 result, and a gradient's x and
    y responses beside it, took 4.6 GB on an 89-MP colour photo)."""
    if how is not Mapping.NORMALIZE:
        return None
    if fixed is not None:
        return fixed
    lo, hi = float("inf"), float("-inf")
    for r0, r1 in spans:
        band = produce(r0, r1)
        lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
    return (lo, hi)


def _filter_file(
    job: FilterJob,
    spec: FilterSpec,
    inputs: Sequence[Path],
    warn: Warn,
    preview_maker: PreviewMaker | None,
) -> FilterResult:
    from cnncli import images

    pic = _load(job, spec, inputs, warn)
    check_channels(job, spec, pic, warn)
    hw = (int(pic.data.shape[0]), int(pic.data.shape[1]))
    geoms, (fh, fw) = plan_sizes(job, spec, hw, pic.channels, pic.describe(), warn)
    _refuse_overflow(job, spec, pic)
    groups = map_groups(spec, pic.channels)
    maps = sum(g.count for g in groups)
    printing = spec.print_result or (job.output is None and images.is_matrix(job.source))
    targets = _targets(job, spec, groups)
    _check_targets(job, spec, inputs, (fh, fw), groups, targets, printing)
    run = _Run(job, spec, pic, groups, (fh, fw) if maps == 1 else (fh, fw, maps))
    run.alpha = _alpha(spec, pic, geoms)
    produce: Callable[[int, int], Any] = _Bands(spec, pic, geoms[0])
    raw = job.output is not None and (
        images.output_format(job.output) in images.RAW_FORMATS or spec.raw
    )
    if printing or spec.split or (job.output is not None and not raw and len(groups) > 1):
        # Several files or maps pictured together, or numbers on screen: the result is made
        # once, whole (the output-values limit bounds it), and every output taken from it.
        described, text = _from_whole(run, produce, targets, printing, warn, preview_maker)
    else:
        described, text = _streamed(run, produce, raw, warn, preview_maker), None
    how = {g.mapping.value: None for g in groups}
    return FilterResult(
        job.source,
        job.output,
        described,
        spec.label,
        "raw" if raw or (job.output is None and text is not None) else "/".join(how),
        border_note(spec, geoms),
        text,
        tuple(path for path, _ in targets) if spec.split else (),
    )


@dataclass
class _Run:
    """One file being filtered: what :func:`_streamed` and :func:`_from_whole` share."""

    job: FilterJob
    spec: FilterSpec
    pic: Picture
    groups: list[MapGroup]
    #: The result's shape: H×W, or H×W×maps.
    shape: tuple[int, ...]
    #: The alpha plane the result carries (the geometry applied), or None.
    alpha: Any = None

    def rows(self) -> int:
        """Result rows per band."""
        maps = self.shape[2] if len(self.shape) == 3 else 1
        return _band_rows(self.spec, self.shape[1], maps)


def _alpha(spec: FilterSpec, pic: Picture, geoms: Sequence[Geometry]) -> Any:
    """The picture's alpha as the result carries it: the geometry, then the pooling and
    convolution stages (``geoms``: the kernels', then each convolution stage's)."""
    import numpy as np

    from cnncli.filtering.correlate import output_tap
    from cnncli.filtering.stages import run_stage

    tap = output_tap(spec.kernel.spatial, spec.anchor, spec.flip)
    alpha = alpha_through(pic.alpha, geoms[0], tap, spec.dilation)
    convolved = iter(geoms[len(spec.kernels) :])
    for stage in spec.stages:
        if alpha is None or stage.op is StageOp.RELU:
            continue
        if stage.op is StageOp.CONV:  # as the first convolution: the anchored pixel's
            assert stage.kernel is not None
            tap = output_tap(stage.kernel.spatial, None, spec.flip)
            alpha = alpha_through(alpha, next(convolved), tap, spec.dilation)
        else:
            alpha = np.rint(run_stage(stage, alpha.astype(np.float32))).astype(alpha.dtype)
    return alpha


def _streamed(
    run: _Run,
    produce: Callable[[int, int], Any],
    raw: bool,
    warn: Warn,
    preview_maker: PreviewMaker | None,
) -> str:
    """One map (or one picture's colour channels) to one output, or to the preview alone:
    made, mapped and written band by band."""
    from cnncli import images

    job, spec, pic, shape = run.job, run.spec, run.pic, run.shape
    how, fixed = run.groups[0].mapping, run.groups[0].value_range
    rows = run.rows()
    mapped = job.output is not None and not raw
    value_range = (
        _value_range(how, fixed, produce, _spans(shape[0], rows))
        if mapped
        else (fixed if how is Mapping.NORMALIZE else None)
    )
    preview = None
    if spec.preview and preview_maker is not None:
        preview = preview_maker(pic, shape, how, value_range)
        rows = preview.align(rows)
    made = _shown(produce, preview)
    spans = _spans(shape[0], rows)
    if job.output is None:
        for r0, r1 in spans:
            made(r0, r1)
        described = f"{'×'.join(map(str, shape))} (not written)"
    elif mapped:
        # Every step after the correlation works on a band of rows (pooling reads the rows
        # its band needs): make, map, show and encode the result band by band. The float32
        # result never exists whole (46 MiB for a 12-MP gray photo, 1 GiB for 89 MP in
        # colour), and a PNG is compressed on other threads while the next band is made.
        described = images.save_result(
            job.output,
            images.Bands(shape, made, rows),
            like=pic,
            how=how,
            value_range=value_range,
            alpha=run.alpha,
            warn=warn,
            make_dir=job.make_dir,
        )
    else:
        described = _save_whole(job, spec, pic, shape, made, spans, run.alpha, value_range, warn)
    _show(run, preview)
    return described


def _show(run: _Run, preview: Preview | None) -> None:
    if preview is not None:
        preview.show(
            left_title=f"{run.job.source.name} ({run.pic.describe()})",
            right_title=f"{run.spec.label} ({run.spec.how.value})",  # the whole chain
        )


def _from_whole(
    run: _Run,
    produce: Callable[[int, int], Any],
    targets: Sequence[tuple[Path, tuple[MapGroup, ...]]],
    printing: bool,
    warn: Warn,
    preview_maker: PreviewMaker | None,
) -> tuple[str, str | None]:
    """The whole result, then every output taken from it: the printed matrices, one file per
    group (--split), or one file of several groups (a montage, or --as-rgb's colour)."""
    job, spec, shape = run.job, run.spec, run.shape
    rows = run.rows()
    preview = None
    if spec.preview and preview_maker is not None:
        first = run.groups[0]
        preview = preview_maker(run.pic, shape, first.mapping, first.value_range)
        rows = preview.align(rows)
    whole = _gathered(_shown(produce, preview), shape, _spans(shape[0], rows))
    text = _printed(job, spec, whole, run.groups) if printing else None
    described = [_write_groups(run, path, groups, whole, warn) for path, groups in targets]
    _show(run, preview)
    if not described:
        h, w = shape[:2]
        maps = shape[2] if len(shape) == 3 else 1
        return f"{h}×{w}" + (f", {maps} maps" if maps > 1 else ""), text
    return (described[0] if len(set(described)) == 1 else "; ".join(described)), text


def _write_groups(run: _Run, path: Path, groups: Sequence[MapGroup], whole: Any, warn: Warn) -> str:
    """One output file of ``groups``' maps from the whole result: raw values, one group's
    picture, three maps packed into colour (--as-rgb), or a labelled montage."""
    import numpy as np

    from cnncli import images

    spec, pic = run.spec, run.pic
    data = _taken(whole, groups)
    make_dir = run.job.make_dir
    if images.output_format(path) in images.RAW_FORMATS or spec.raw:
        return images.save_result(
            path, data, like=pic, how=groups[0].mapping, raw=spec.raw, warn=warn,
            make_dir=make_dir, layout=spec.layout,
        )  # fmt: skip
    if len(groups) == 1:
        g = groups[0]
        fixed = g.value_range if g.mapping is Mapping.NORMALIZE else None
        return images.save_result(
            path, data, like=pic, how=g.mapping, value_range=fixed, alpha=run.alpha,
            warn=warn, make_dir=make_dir,
        )  # fmt: skip
    if spec.as_rgb:
        # Each map mapped by its own kernel's rule, then written as they are (clip of whole
        # numbers within range changes nothing).
        rgb = np.stack([_pixels(whole, g, pic.maxval) for g in groups], axis=2)
        return images.save_result(
            path, rgb.astype(np.float32), like=pic, how=Mapping.CLIP, alpha=run.alpha,
            warn=warn, make_dir=make_dir,
        )  # fmt: skip
    if run.alpha is not None:
        warn(f"{path}: a montage of maps has no alpha channel; alpha dropped")
    tiles = []
    for g in groups:
        px = _pixels(whole, g, pic.maxval)
        if pic.maxval != 255:  # a montage is 8-bit
            px = np.rint(px.astype(np.float64) / (pic.maxval / 255)).astype(np.uint8)
        tiles.append((g.label, px.astype(np.uint8)))
    return images.save_montage(path, tiles, make_dir=make_dir)


def _taken(whole: Any, groups: Sequence[MapGroup]) -> Any:
    """The maps of ``groups`` from the whole result: H×W for one map, else H×W×n."""
    import numpy as np

    if whole.ndim == 2:
        return whole
    index = [c for g in groups for c in range(g.first, g.first + g.count)]
    if len(index) == whole.shape[2]:
        return whole
    if index == list(range(index[0], index[0] + len(index))):
        taken = whole[:, :, index[0] : index[0] + len(index)]
    else:
        taken = whole[:, :, index]
    return np.ascontiguousarray(taken[:, :, 0] if taken.shape[2] == 1 else taken)


def _pixels(whole: Any, g: MapGroup, maxval: int) -> Any:
    """One group's maps as pixels (0..maxval) by its own mapping: ``normalize`` stretches its
    own min..max (or the kernel's fixed range), not the other maps'."""
    from cnncli import images

    data = _taken(whole, [g])
    fixed = g.value_range if g.mapping is Mapping.NORMALIZE else None
    return images.map_values(data, g.mapping, maxval, fixed)


def _targets(
    job: FilterJob, spec: FilterSpec, groups: Sequence[MapGroup]
) -> list[tuple[Path, tuple[MapGroup, ...]]]:
    """Where the groups go: nothing (preview, print), the one output, or with --split one
    file per group: ``<-o stem>_<kernel>.<ext>``, or ``<input stem>_<kernel>[_<stages>].<ext>``
    beside the input or in --out-dir."""
    out = job.output
    if out is None:
        return []
    if not spec.split:
        return [(out, tuple(groups))]
    stages = "_".join(st.slug for st in spec.stages)
    named: list[tuple[Path, tuple[MapGroup, ...]]] = []
    for g in groups:
        if job.named:
            name = f"{out.stem}_{g.slug}{out.suffix}"
        else:
            name = f"{job.source.stem}_{g.slug}" + (f"_{stages}" if stages else "") + out.suffix
        named.append((out.with_name(name), (g,)))
    return named


def _check_targets(
    job: FilterJob,
    spec: FilterSpec,
    inputs: Sequence[Path],
    hw: tuple[int, int],
    groups: Sequence[MapGroup],
    targets: Sequence[tuple[Path, tuple[MapGroup, ...]]],
    printing: bool,
) -> None:
    """Refuse, before any work, what the result cannot go to: a ``.csv``/``.txt`` file for
    more than one map, --as-rgb for other than three maps or into raw values, a --split file
    that exists (without --force) or is an input, the terminal for a map too large to read
    there."""
    from cnncli import images
    from cnncli.render.matrix import check_printable

    maps = sum(g.count for g in groups)
    for path, gs in targets:
        if spec.split:
            images.check_output(path, list(inputs), spec.force)
        images.check_matrix_output(path, sum(g.count for g in gs))
        raw = images.output_format(path) in images.RAW_FORMATS or spec.raw
        if spec.as_rgb and (maps != 3 or raw):
            labels = ", ".join(label for g in groups for label in g.map_labels())
            raise UsageError(
                f"--as-rgb packs exactly three maps into one colour picture; this result has "
                f"{maps} ({labels})"
                if maps != 3
                else f"--as-rgb makes a colour picture (.png, .tif, …), not {path.suffix} "
                "values; drop --as-rgb, or write a picture"
            )
    if printing:
        check_printable(hw[0], hw[1], spec.columns, short(job.source))


def _gathered(
    made: Callable[[int, int], Any], shape: tuple[int, ...], spans: list[tuple[int, int]]
) -> Any:
    """The whole result, made band by band."""
    import numpy as np

    whole = np.empty(shape, dtype=np.float32)
    for r0, r1 in spans:
        whole[r0:r1] = made(r0, r1)
    return whole


def _printed(job: FilterJob, spec: FilterSpec, whole: Any, groups: Sequence[MapGroup]) -> str:
    """The result's maps as aligned matrices, labelled by the kernel (and channel) that made
    them; a UsageError when one is too wide for ``spec.columns``."""
    from cnncli.render.matrix import printed

    labels = [label for g in groups for label in g.map_labels()]
    maps = [whole] if whole.ndim == 2 else [whole[:, :, i] for i in range(whole.shape[2])]
    return printed(list(zip(labels, maps, strict=True)), spec.columns, short(job.source))


def _refuse_overflow(job: FilterJob, spec: FilterSpec, pic: Picture) -> None:
    """Refuse a kernel whose result can leave float32 on this input (it would be written as
    inf or garbage): Σ|k| times the largest input or border value, checked before any work."""
    import numpy as np

    if pic.bits == 32:  # .npy values: as stored
        peak = float(np.max(np.abs(pic.data))) if pic.data.size else 0.0
    else:
        peak = float(pic.maxval)
    border = abs(spec.border_value)
    reach = _reach(job, spec.kernels, max(peak, border))
    for stage in spec.convolutions:  # each convolution reads the one before
        assert stage.kernel is not None
        reach = _reach(job, [stage.kernel], max(reach, border))


def _reach(job: FilterJob, kernels: Sequence[Kernel], peak: float) -> float:
    """The largest value ``kernels`` can make of inputs up to ``peak`` (a KernelError when one
    leaves float32): what the next layer reads."""
    from cnncli.filtering.kernels import F32_MAX, gain

    most = 0.0
    for k in kernels:
        reach = gain(k) * peak
        # sqrt(gx² + gy²) squares each response first.
        limit = F32_MAX if k.combine is not Combine.MAGNITUDE else (F32_MAX / 2) ** 0.5
        if reach > limit:
            raise KernelError(
                f"{short(job.source)}: kernel {k.name} can reach {reach:.3g} on this input "
                f"(Σ|k| = {gain(k):.3g} × values up to {peak:.3g}), beyond the float32 "
                f"range (±{limit:.3g}) filters compute in; scale the kernel or the input down"
            )
        most = max(most, reach)
    return most


def _shown(
    produce: Callable[[int, int], Any], preview: Preview | None
) -> Callable[[int, int], Any]:
    """``produce``, with every band also handed to the preview."""
    if preview is None:
        return produce

    def made(r0: int, r1: int) -> Any:
        band = produce(r0, r1)
        preview.add(band)
        return band

    return made


def _save_whole(
    job: FilterJob,
    spec: FilterSpec,
    pic: Picture,
    shape: tuple[int, ...],
    made: Callable[[int, int], Any],
    spans: list[tuple[int, int]],
    alpha: Any,
    value_range: Any,
    warn: Warn,
) -> str:
    """Raw floats, written whole; they are still made band by band, so the temporaries of a
    band (a gradient's x and y responses) never exist for the whole picture, and the main
    thread comes back to Python (and its signal handlers) between bands."""
    import numpy as np

    from cnncli import images

    assert job.output is not None
    result = np.empty(shape, dtype=np.float32)
    for r0, r1 in spans:
        result[r0:r1] = made(r0, r1)
    if not spec.preview:
        # Only the preview shows the input again: free the input plane now, before writing
        # (lower peak memory).
        pic = dataclasses.replace(pic, data=np.empty((0, 0), dtype=np.float32))
    return images.save_result(
        job.output,
        result,
        like=pic,
        how=spec.how,
        value_range=value_range,
        raw=spec.raw,
        alpha=alpha,
        warn=warn,
        make_dir=job.make_dir,
        layout=spec.layout,
    )
