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
from cnncli.enums import Border, Combine, Mapping, StageOp
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


@dataclass(frozen=True, eq=False)  # weight arrays: compared as objects, not element-wise
class FilterSpec:
    """Everything a filter run does to each file, validated: the kernel, the ``--then``
    stages, the geometry options, and how the result becomes pixels."""

    kernel: Kernel
    #: How the report line names the filter: ``sobel-x (convolve) → relu``.
    label: str
    stages: tuple[Stage, ...] = ()
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

    @property
    def how(self) -> Mapping:
        """The mapping of float results to pixels."""
        return self.mapping if self.mapping is not None else self.kernel.mapping

    @property
    def slug(self) -> str:
        """What output names add to the input's stem: ``sobel-x-conv_relu_maxpool2``."""
        head = self.kernel.slug + ("-conv" if self.flip else "")
        return "_".join([head] + [st.label for st in self.stages])

    def maps(self, channels: int) -> int:
        """Result maps: one per channel for a 2-D kernel, one for Cin×kh×kw, Cout for 4-D."""
        return {2: channels, 3: 1, 4: int(self.kernel.matrix.shape[0])}[self.kernel.ndim]


def build_spec(
    kernel: str,
    *,
    then: Sequence[str] = (),
    direction: bool = False,
    normalize: bool = False,
    warn: Warn,
    **options: Any,
) -> FilterSpec:
    """The spec of a run from the kernel spec text, the ``--then`` texts and the other options
    (parsed already: :class:`FilterSpec`'s fields). ``direction``: a gradient's direction
    instead of its magnitude; ``normalize``: the kernel divided by its sum (a zero sum is left
    alone, with a warning)."""
    from cnncli.filtering import kernels as kmod
    from cnncli.filtering.stages import parse_stage

    stages = tuple(parse_stage(t) for t in then)
    k = kmod.resolve_kernel(kernel)
    if direction:
        k = kmod.direction_of(k)
    if normalize:
        k, warning = kmod.normalized(k)
        if warning:
            warn(warning)
    anchor = options.get("anchor")
    kh, kw = k.spatial
    if anchor is not None and not (anchor[0] < kh and anchor[1] < kw):
        raise UsageError(
            f"{{opt:anchor}} {anchor[0]},{anchor[1]} is outside the {kh}×{kw} kernel; "
            f"use 0..{kh - 1},0..{kw - 1}"
        )
    flip = bool(options.get("flip"))
    label = " → ".join(
        [kernel.strip() + (" (convolve)" if flip else "")] + [st.label for st in stages]
    )
    return FilterSpec(k, label, stages, **options)


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


def _core(warn: Warn) -> ModuleType:
    """The Numba core (:mod:`cnncli.filtering.correlate`), with its one warning printed once a
    run: no writable cache directory for the compiled code."""
    from cnncli.filtering import correlate

    note = correlate.cache_note()
    if note and note not in _warned:
        _warned.add(note)
        warn(note)
    return correlate


#: Threads the warm-up starts are named with this prefix (see :func:`warm_core`).
WARM_THREAD_PREFIX = "cnncli-warm"


class _HideFromThread(MetaPathFinder):
    """Makes ``import scipy`` (and its submodules) fail in one thread and in the warm-up's
    compile threads (named ``cnncli-warm-…``) only."""

    def __init__(self, thread: threading.Thread, package: str) -> None:
        self.thread = thread
        self.package = package

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        current = threading.current_thread()
        if top == self.package and (
            current is self.thread or current.name.startswith(WARM_THREAD_PREFIX)
        ):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # someone else's import: the other finders decide


@contextmanager
def hidden_in_this_thread(package: str) -> Iterator[None]:
    """Imports of ``package`` fail in the calling thread while inside, unless it was imported
    already; other threads import it as usual (a finder consulted only for modules not imported
    yet, keyed on the thread, instead of ``sys.modules[package] = None``, which hid it from the
    whole process)."""
    if package in sys.modules:  # someone uses it: its submodules stay importable too
        yield
        return
    finder = _HideFromThread(threading.current_thread(), package)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def warm_core(note: Warn | None = None) -> None:
    """Import the Numba core and load it from the cache (or, with an empty cache, compile it:
    the first run) in a background thread, while the main thread reads the first image.

    Importing Numba and loading its cache take ~0.5 s and a first compile ~1.5 s more; image
    decoding and PNG encoding release the GIL, so much of that overlaps them. The core is one
    compiled function for every path and pixel type, so what a command will need is all of
    it: the first run of any command compiles once, every later run loads. ``note`` prints
    :data:`~cnncli.filtering.correlate.COMPILE_NOTE` when the first filtering has to wait for
    that compile (never for a cache load, nor in a run that fails before filtering).
    """

    def run() -> None:
        # When SciPy is installed, importing Numba imports it only to check its version
        # (~12 ms), and a first compile imports scipy.linalg (~0.1 s, ~10 MiB) only to see
        # whether np.dot & co. can use BLAS; the core uses neither. SciPy is hidden from this
        # thread alone, so the main thread (or a library caller's) may still import it.
        try:
            with hidden_in_this_thread("scipy"):
                from cnncli.filtering import correlate

                correlate.load_core(announce=note)
        except Exception:  # only a head start: the real call reports any problem itself
            pass

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
    warn: Warn,
) -> tuple[Geometry, tuple[int, int]]:
    """The filter's geometry and the size after the --then stages for an ``hw`` input, with
    every size checked against the work budget before anything is allocated. Errors name the
    file (``what`` describes it) — in a batch, one image can be too small or too large while
    the others fit."""
    from cnncli.filtering.stages import plan_stages

    correlate = _core(warn)
    try:
        geom = correlate.plan_geometry(
            hw,
            spec.kernel.spatial,
            padding=spec.padding,
            stride=spec.stride,
            dilation=spec.dilation,
            anchor=spec.anchor,
            flip=spec.flip,
        )
        correlate.check_work(geom, channels, spec.maps(channels))
        ho, wo = geom.output_size
        final = plan_stages(spec.stages, (ho, wo))
    except (ShapeError, LimitError) as err:
        raise type(err)(f"{short(job.source)} ({what}): {err}") from None
    return geom, final


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

    if job.output is not None:
        images.check_output(job.output, list(inputs), spec.force)
    hint = images.peek(job.source) if regular(job.source) else None
    if hint is not None:
        # From the header alone, before decoding: an absurd result is refused at once (gray
        # or colour is not known yet; one channel is the smallest it can be).
        h, w = hint[1]
        try:
            plan_sizes(job, spec, (h, w), 1, f"{w}×{h}", warn)
        except ShapeError:  # reported after decoding, with the picture described in full
            pass
    # --limit pixels=N (or --max-pixels N); left to the reader's own default otherwise.
    pixels = limits.get("pixels")
    pic: Picture = images.load_image(
        job.source,
        max_pixels=None if pixels == limits.LIMITS["pixels"].default else pixels,
        gray=spec.gray,
        warn=warn,
    )
    if spec.gray:  # what load_image left (not 8-bit RGB): gray as it is, or refused
        pic = images.to_gray(pic)
    return pic


class _Bands:
    """Rows of the final result on demand: the correlation rows they read (through the
    pooling stages, back to front), correlated, then every stage."""

    def __init__(self, spec: FilterSpec, pic: Picture, geom: Geometry) -> None:
        self.spec, self.pic = spec, pic
        self.width = geom.output_size[1]

    def correlate(self, rows: tuple[int, int]) -> Any:
        from cnncli.filtering.correlate import apply_kernel

        s = self.spec
        out = apply_kernel(
            s.kernel,
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
        return out

    def __call__(self, r0: int, r1: int) -> Any:
        from cnncli.filtering.stages import run_stage

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


def _value_range(spec: FilterSpec, produce: _Bands, spans: list[tuple[int, int]]) -> Any:
    """The range ``normalize`` maps from: the kernel's own, or the result's min..max found in a
    first pass over the bands, so the result can still be made, mapped and written band by
    band (the correlation runs twice; holding the whole float32 result, and a gradient's x and
    y responses beside it, took 4.6 GB on an 89-MP colour photo)."""
    if spec.how is not Mapping.NORMALIZE:
        return None
    if spec.kernel.value_range is not None:
        return spec.kernel.value_range
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
    import numpy as np

    from cnncli import images
    from cnncli.filtering.correlate import output_tap
    from cnncli.filtering.stages import run_stage

    pic = _load(job, spec, inputs, warn)
    hw = (int(pic.data.shape[0]), int(pic.data.shape[1]))
    geom, (fh, fw) = plan_sizes(job, spec, hw, pic.channels, pic.describe(), warn)
    _refuse_overflow(job, spec, pic)
    how = spec.how
    tap = output_tap(spec.kernel.spatial, spec.anchor, spec.flip)
    alpha = alpha_through(pic.alpha, geom, tap, spec.dilation)
    for stage in spec.stages:
        if alpha is not None and stage.op is not StageOp.RELU:
            alpha = np.rint(run_stage(stage, alpha.astype(np.float32))).astype(alpha.dtype)
    maps = spec.maps(pic.channels)
    produce = _Bands(spec, pic, geom)
    shape = (fh, fw) if maps == 1 else (fh, fw, maps)
    rows = _band_rows(spec, fw, maps)
    raw = job.output is not None and (job.output.suffix.lower() == ".npy" or spec.raw)
    mapped = job.output is not None and not raw
    value_range = (
        _value_range(spec, produce, _spans(fh, rows))
        if mapped
        else (spec.kernel.value_range if how is Mapping.NORMALIZE else None)
    )
    preview = None
    if spec.preview and preview_maker is not None:
        preview = preview_maker(pic, shape, how, value_range)
        rows = preview.align(rows)
    made = _shown(produce, preview)
    spans = _spans(fh, rows)
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
            alpha=alpha,
            warn=warn,
            make_dir=job.make_dir,
        )
    else:
        described = _save_whole(job, spec, pic, shape, made, spans, alpha, value_range, warn)
    if preview is not None:
        preview.show(
            left_title=f"{job.source.name} ({pic.describe()})",
            right_title=f"{spec.label} ({how.value})",  # the whole chain, not the kernel alone
        )
    return FilterResult(job.source, job.output, described, spec.label, "raw" if raw else how.value)


def _refuse_overflow(job: FilterJob, spec: FilterSpec, pic: Picture) -> None:
    """Refuse a kernel whose result can leave float32 on this input (it would be written as
    inf or garbage): Σ|k| times the largest input or border value, checked before any work."""
    import numpy as np

    from cnncli.filtering.kernels import F32_MAX, gain

    if pic.bits == 32:  # .npy values: as stored
        peak = float(np.max(np.abs(pic.data))) if pic.data.size else 0.0
    else:
        peak = float(pic.maxval)
    peak = max(peak, abs(spec.border_value))
    reach = gain(spec.kernel) * peak
    # sqrt(gx² + gy²) squares each response first.
    limit = F32_MAX if spec.kernel.combine is not Combine.MAGNITUDE else (F32_MAX / 2) ** 0.5
    if reach > limit:
        raise KernelError(
            f"{short(job.source)}: kernel {spec.kernel.name} can reach {reach:.3g} on this input "
            f"(Σ|k| = {gain(spec.kernel):.3g} × values up to {peak:.3g}), beyond the float32 "
            f"range (±{limit:.3g}) filters compute in; scale the kernel or the input down"
        )


def _shown(produce: _Bands, preview: Preview | None) -> Callable[[int, int], Any]:
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
    )
