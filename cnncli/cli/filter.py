"""``cnncli filter``: named or custom kernels on images; ``cnncli kernels``: the kernel library.

numpy, Pillow and the Numba core are imported inside the command functions only, so ``cnncli
shape`` and ``cnncli summary`` (which import this module to register it) never pay for them.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnncli.cli import app
from cnncli.cli.options import LimitOption, apply_limits, parse_ints
from cnncli.enums import BORDER_ALIASES, Border, Mapping, parse_border, parse_choice
from cnncli.errors import CnnCliError, ShapeError, UsageError
from cnncli.limits import LimitError

if TYPE_CHECKING:
    from cnncli.filtering.kernels import Kernel
    from cnncli.filtering.stages import Stage
    from cnncli.images import Picture

#: Result values per band when an image output is made band by band: 4 MiB of float32 (262
#: rows of a 12-MP photo) measured fastest; smaller bands pay more Python per row, larger ones
#: hold more memory.
BAND_VALUES = 1 << 20

FILTER_HELP = """Filter images with a named or custom kernel, as a CNN layer does (correlation).

IMAGE may be files, globs (quoted or not) and directories (their image files). With one input, -o
names the output; with many, --out-dir holds them as <stem>_<kernel>.<ext>. With neither, each
result is written next to its input as <stem>_<kernel>.<ext> (the input's format; .png for GIF;
.npy for .npy input), never over an existing file unless --force, never over an input. With
--preview and neither -o nor --out-dir, nothing is written: the result is only shown.

Output formats by extension: .png .jpg .tif .webp .bmp (pixels mapped with --map; 16-bit input,
gray or colour, stays 16-bit in PNG/TIFF, gray stays gray, alpha passes through: with stride or
valid padding each output pixel keeps the alpha of the input pixel its window is anchored on) and
.npy (raw float32, no mapping; also .tif with --raw, one channel). PNG and TIFF are written by
cnncli's own encoders on every core (PNG: zlib level 1 with the RLE strategy, as OpenCV; TIFF:
deflate with the horizontal predictor), 8- or 16-bit, gray or RGB, with alpha; images are made band
by band, so a large result never sits in memory whole.

Kernel specs (see 'cnncli kernels'): a name with parameters (sobel, sobel-x, sobel-dir,
gaussian:sigma=2, box:size=5, motion:length=9,angle=45, unsharp:amount=1.5, kirsch), an inline
matrix "1,0,-1;1,0,-1;1,0,-1" (rows split by ';'), or a file: .txt/.csv rows, .json nested list
(2-D kh×kw, 3-D C_in×kh×kw summing the channels into one map, 4-D C_out×C_in×kh×kw giving C_out
maps, PyTorch's weight layout), .npy array.

Borders (--border; OpenCV name / scipy.ndimage mode, both accepted): {borders}.

Examples:

  cnncli filter samples/seed.npy -k vertical-edge -p valid -o out.npy

  (the course notes' 6×6 example: every row of out.npy is [0, 39, 39, 0])

  cnncli filter samples/coffee.png -k sobel -o coffee_sobel.png

  cnncli filter samples/chelsea.png -k gaussian:sigma=2 -o blur.png

  cnncli filter samples/camera.png -k sobel --preview

  cnncli filter samples/camera.png -k sobel-x --then relu --then maxpool:2

  (one CNN stage, conv → ReLU → pool: writes samples/camera_sobel-x_relu_maxpool2.png)

  cnncli filter 'samples/*.png' -k emboss --gray --out-dir embossed/

  cnncli filter samples/d2l-x.npy -k samples/kernels/d2l-3d.json -p valid

  (d2l's 2-channel example: samples/d2l-x_d2l-3d.npy holds [[56, 72], [104, 120]])
"""
FILTER_HELP = FILTER_HELP.replace(
    "{borders}",
    "; ".join(
        f"{b.value}{'[=v]' if b is Border.CONSTANT else ''} = {cv} / {sp} ({b.picture}"
        + (", the default, as OpenCV)" if b is Border.REFLECT101 else ")")
        for b, (cv, sp) in BORDER_ALIASES.items()
    ),
)

KERNELS_HELP = """List the named kernels, or show one (with parameters) in full.

Parameters go after a colon, comma-separated: gaussian:sigma=2,size=9. Gradient operators (sobel,
scharr, prewitt, roberts) give the magnitude of the x/y pair; NAME-x and NAME-y give one alone,
NAME-dir the direction in degrees (mapped 0..360 to black..white). Compass sets (kirsch, robinson)
give the largest of 8 directional responses.

Examples:

  cnncli kernels

  cnncli kernels gaussian:sigma=2

  cnncli kernels sobel-x
"""


def _warn(message: str) -> None:
    from cnncli.render.term import printable  # file names in warnings come from input

    sys.stderr.write(f"cnncli: warning: {printable(' '.join(message.split()))}\n")


def _ints(text: str, what: str, minimum: int = 1) -> tuple[int, ...]:
    """One value or one per axis (Y,X), checked by the arithmetic core like every command's."""
    from cnncli import arithmetic as ar

    return ar.per_axis(parse_ints(text, what), 2, what, minimum)


def _parse_border(text: str) -> tuple[Border, float]:
    name, eq, value = text.strip().lower().partition("=")
    border = parse_border(name)
    if eq and border is not Border.CONSTANT:
        raise UsageError(f"--border {text!r}: only constant takes a value (constant=v)")
    border_value = 0.0
    if eq:
        try:
            border_value = float(value)
        except ValueError:
            raise UsageError(
                f"--border {text!r}: {value!r} is not a number; write e.g. constant=128"
            ) from None
        if border_value != border_value or border_value in (float("inf"), float("-inf")):
            raise UsageError(f"--border {text!r}: the constant must be finite")
    return border, border_value


def _parse_padding(text: str) -> str | int | tuple[int, int]:
    t = text.strip().lower()
    if t in ("same", "valid", "full"):
        return t
    values = _ints(t, "--padding", minimum=0)
    return values[0] if values[0] == values[1] else (values[0], values[1])


@dataclass
class Job:
    """One input and where its result goes (None: preview only)."""

    source: Path
    output: Path | None
    #: --out-dir: created (with parents) just before the first write, so a run that writes
    #: nothing leaves no empty directory behind.
    make_dir: bool = False


def _expand(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files, globs (for shells that do not expand them) and directories → paths, plus errors
    for patterns and directories that give nothing."""
    from cnncli.images import IMAGE_EXTENSIONS
    from cnncli.outputs import describe_os_error

    paths: list[Path] = []
    problems: list[str] = []
    for arg in inputs:
        p = Path(os.path.expanduser(arg))
        try:
            exists, is_dir = p.exists(), p.is_dir()
        except (OSError, ValueError) as err:  # a name too long for the file system, a NUL
            why = describe_os_error(err) if isinstance(err, OSError) else str(err)
            problems.append(f"{_short(arg)}: {why}")
            continue
        if not exists and glob.has_magic(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                problems.append(f"{arg}: no files match")
            paths += files
        elif is_dir:
            found = sorted(
                c
                for c in p.iterdir()
                if c.is_file()
                and not c.name.startswith(".")
                and c.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not found:
                problems.append(f"{arg}: directory holds no image files")
            paths += found
        else:
            paths.append(p)
    seen: set[Path] = set()
    unique: list[Path] = []
    for p in paths:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, problems


def _default_ext(source: Path, kernel: Kernel, raw: bool) -> str:
    from cnncli.images import SAVE_FORMATS

    ext = source.suffix.lower()
    maps = int(kernel.matrix.shape[0]) if kernel.ndim == 4 else 1
    if raw or ext == ".npy" or maps not in (1, 3):
        return ".npy"
    return ext if ext in SAVE_FORMATS else ".png"


def _plan(
    paths: list[Path],
    output: Path | None,
    out_dir: Path | None,
    kernel: Kernel,
    slug: str,
    raw: bool,
    preview: bool,
) -> list[Job]:
    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir both given; use -o for one input or --out-dir for many")
    if output is not None and len(paths) > 1:
        raise UsageError(
            f"-o names one output file but {len(paths)} inputs were given; use --out-dir DIR"
        )
    jobs: list[Job] = []
    targets: dict[Path, Path] = {}
    for src in paths:
        if output is not None:
            dest: Path | None = output
        elif out_dir is None and preview:
            dest = None
        else:
            folder = out_dir if out_dir is not None else src.parent
            dest = folder / f"{src.stem}_{slug}{_default_ext(src, kernel, raw)}"
        if dest is not None:
            key = dest.resolve()
            if key in targets:
                raise UsageError(
                    f"{targets[key]} and {src} would both be written to {dest}; "
                    "give them different names or separate --out-dir runs"
                )
            targets[key] = src
        jobs.append(Job(src, dest, out_dir is not None))
    return jobs


@dataclass
class Settings:
    label: str
    kernel: Kernel
    stages: list[Stage]
    padding: Any
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    border: Border
    border_value: float
    anchor: tuple[int, int] | None
    flip: bool
    gray: bool
    mapping: Mapping | None
    raw: bool
    force: bool
    max_pixels: int | None
    preview: bool


def _alpha_through(
    alpha: Any, geom: Any, anchor: tuple[int, int], dilation: tuple[int, ...]
) -> Any:
    """The alpha of the input pixel each output pixel is anchored on (untouched when the size
    is kept): the plane follows the same padding and stride as the image."""
    import numpy as np

    if alpha is None:
        return None
    ay, ax = geom.axes
    if (
        ay.output == alpha.shape[0]
        and ax.output == alpha.shape[1]
        and ay.stride == ax.stride == 1
        and ay.pad_before == dilation[0] * anchor[0]
        and ax.pad_before == dilation[1] * anchor[1]
    ):
        return alpha
    rows = np.clip(
        np.arange(ay.output) * ay.stride - ay.pad_before + dilation[0] * anchor[0],
        0,
        alpha.shape[0] - 1,
    )
    cols = np.clip(
        np.arange(ax.output) * ax.stride - ax.pad_before + dilation[1] * anchor[1],
        0,
        alpha.shape[1] - 1,
    )
    return alpha[np.ix_(rows, cols)]


class FileFailed(CnnCliError):
    """One input could not be filtered; the message names the file (the batch goes on)."""


def _short(path: Path | str) -> str:
    """A path as error lines show it: names too long for any file system are cut."""
    text = str(path)
    size = len(os.fsencode(text))
    return text if size <= 255 else f"{text[:60]}… ({size} bytes)"


def _maps(kernel: Kernel, channels: int) -> int:
    """Result maps: one per channel for a 2-D kernel, one for Cin×kh×kw, Cout for 4-D."""
    return {2: channels, 3: 1, 4: int(kernel.matrix.shape[0])}[kernel.ndim]


_warned: set[str] = set()


def _core() -> Any:
    """The Numba core (:mod:`cnncli.filtering.correlate`), with its one warning printed once a
    run: no writable cache directory for the compiled code."""
    from cnncli.filtering import correlate as convolve

    note = convolve.cache_note()
    if note and note not in _warned:
        _warned.add(note)
        _warn(note)
    return convolve


def _plan_sizes(
    job: Job, s: Settings, hw: tuple[int, int], channels: int, what: str
) -> tuple[Any, tuple[int, int]]:
    """The filter's geometry and the size after the --then stages for an ``hw`` input, with
    every size checked against the work budget before anything is allocated. Errors name the
    file (``what`` describes it) — in a batch, one image can be too small or too large while
    the others fit."""
    from cnncli.filtering.stages import plan_stages

    convolve = _core()
    check_work, plan_geometry = convolve.check_work, convolve.plan_geometry

    try:
        geom = plan_geometry(
            hw,
            s.kernel.spatial,
            padding=s.padding,
            stride=s.stride,
            dilation=s.dilation,
            anchor=s.anchor,
            flip=s.flip,
        )
        check_work(geom, channels, _maps(s.kernel, channels))
        ho, wo = geom.output_size
        final = plan_stages(s.stages, (ho, wo))
    except (ShapeError, LimitError) as err:
        raise type(err)(f"{_short(job.source)} ({what}): {err}") from None
    return geom, final


def _process(job: Job, s: Settings, inputs: list[Path]) -> str:
    """Filter one file; returns the line reported on stdout."""
    import dataclasses

    import numpy as np

    from cnncli import images, limits
    from cnncli.filtering.correlate import apply_kernel
    from cnncli.filtering.stages import run_stage

    if job.output is not None:
        images.check_output(job.output, inputs, s.force)
    hint = images.peek(job.source) if _regular(job.source) else None
    if hint is not None:
        # From the header alone, before decoding: an absurd result is refused at once (gray
        # or colour is not known yet; one channel is the smallest it can be).
        h, w = hint[1]
        try:
            _plan_sizes(job, s, (h, w), 1, f"{w}×{h}")
        except ShapeError:  # reported after decoding, with the picture described in full
            pass
    # --limit pixels=N (or --max-pixels N); left to the reader's own default otherwise.
    pixels = limits.get("pixels")
    pic: Picture = images.load_image(
        job.source,
        max_pixels=None if pixels == limits.LIMITS["pixels"].default else pixels,
        gray=s.gray,
        warn=_warn,
    )
    if s.gray:  # what load_image left (not 8-bit RGB): gray as it is, or refused
        pic = images.to_gray(pic)
    hw = (int(pic.data.shape[0]), int(pic.data.shape[1]))
    geom, (fh, fw) = _plan_sizes(job, s, hw, pic.channels, pic.describe())
    kh, kw = s.kernel.spatial
    how = s.mapping if s.mapping is not None else s.kernel.mapping
    value_range = s.kernel.value_range if how is Mapping.NORMALIZE else None
    anchor = s.anchor if s.anchor is not None else ((kh - 1) // 2, (kw - 1) // 2)
    if s.flip:  # the flipped kernel's tap on the output pixel is the mirrored anchor
        anchor = (kh - 1 - anchor[0], kw - 1 - anchor[1])
    alpha = _alpha_through(pic.alpha, geom, anchor, s.dilation)
    for stage in s.stages:
        if alpha is not None and stage.op != "relu":
            alpha = np.rint(run_stage(stage, alpha.astype(np.float32))).astype(alpha.dtype)
    wo = geom.output_size[1]
    maps = _maps(s.kernel, pic.channels)

    def correlate(rows: tuple[int, int]) -> Any:
        out = apply_kernel(
            s.kernel,
            pic.data,
            padding=s.padding,
            stride=s.stride,
            dilation=s.dilation,
            border=s.border,
            border_value=s.border_value,
            anchor=s.anchor,
            flip=s.flip,
            rows=rows,
        )
        want = (rows[1] - rows[0], wo)
        if out.shape[:2] != want:  # a contract check between two modules, not input
            raise CnnCliError(
                f"internal error: result {out.shape[:2]} but the arithmetic core says {want}"
            )
        return out

    def produce(r0: int, r1: int) -> Any:
        """Rows r0 .. r1-1 of the final result: the correlation rows they read (through the
        pooling stages, back to front), correlated, then every stage."""
        spans = [(r0, r1)]
        for stage in reversed(s.stages):
            spans.append(stage.rows_needed(*spans[-1]))
        out = correlate(spans[-1])
        for stage in s.stages:
            out = run_stage(stage, out)
        return out[:, :, 0] if out.ndim == 3 and out.shape[2] == 1 else out

    shape = (fh, fw) if maps == 1 else (fh, fw, maps)
    # Rows of the final result per band: about BAND_VALUES correlation values each (pooling
    # reads stride² correlation values per result value).
    spread = 1
    for stage in s.stages:
        spread *= max(1, stage.stride) ** 2
    rows = max(1, BAND_VALUES // max(1, fw * maps * spread))
    spans = [(r0, min(fh, r0 + rows)) for r0 in range(0, fh, rows)]
    mapped = job.output is not None and job.output.suffix.lower() != ".npy" and not s.raw
    if mapped and how is Mapping.NORMALIZE and value_range is None:
        # normalize stretches the result's own min..max: a first pass over the bands finds
        # them, so the result can still be made, mapped and written band by band (the
        # correlation runs twice; holding the whole float32 result, and a gradient's x and y
        # responses beside it, took 4.6 GB on an 89-MP colour photo).
        lo, hi = float("inf"), float("-inf")
        for r0, r1 in spans:
            band = produce(r0, r1)
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
        value_range = (lo, hi)
    preview = _Preview(pic, shape, how, value_range) if s.preview else None
    made = produce
    if preview is not None:
        rows = preview.align(rows)
        spans = [(r0, min(fh, r0 + rows)) for r0 in range(0, fh, rows)]

        def made(r0: int, r1: int) -> Any:
            band = produce(r0, r1)
            preview.add(band)
            return band

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
            warn=_warn,
            make_dir=job.make_dir,
        )
    else:
        # Raw floats are written whole; they are still made band by band, so the temporaries
        # of a band (a gradient's x and y responses) never exist for the whole picture, and
        # the main thread comes back to Python (and its signal handlers) between bands.
        result = np.empty(shape, dtype=np.float32)
        for r0, r1 in spans:
            result[r0:r1] = made(r0, r1)
        if preview is None:
            # Only the preview shows the input again: free the input plane now, before
            # writing (lower peak memory).
            pic = dataclasses.replace(pic, data=np.empty((0, 0), dtype=np.float32))
        described = images.save_result(
            job.output,
            result,
            like=pic,
            how=how,
            value_range=value_range,
            raw=s.raw,
            alpha=alpha,
            warn=_warn,
            make_dir=job.make_dir,
        )
        del result
    if preview is not None:
        preview.show(
            left_title=f"{job.source.name} ({pic.describe()})",
            right_title=f"{s.kernel.name} ({how.value})",
        )
    mapping = (
        "raw"
        if job.output is not None and (job.output.suffix.lower() == ".npy" or s.raw)
        else how.value
    )
    target = job.output if job.output is not None else "preview"
    return f"{job.source} → {target}: {described}, {s.label}, map {mapping}"


class _Preview:
    """The two pictures of --preview, reduced to the preview's size as the result's bands
    come (box means, in float32) and only then mapped to 8-bit RGB: never a float or RGB copy
    of a whole large picture."""

    def __init__(self, pic: Picture, shape: tuple[int, ...], how: Any, value_range: Any) -> None:
        from rich.console import Console

        from cnncli.render.preview import Shrink, preview_pixels, shrink_factor

        self.console = Console(highlight=False)
        self.pic, self.how, self.value_range = pic, how, value_range
        columns, pixel_rows = preview_pixels(self.console)
        h, w = int(shape[0]), int(shape[1])
        self.result = Shrink(h, w, shrink_factor((h, w), columns, pixel_rows))
        ih, iw = int(pic.data.shape[0]), int(pic.data.shape[1])
        self.input = Shrink(ih, iw, shrink_factor((ih, iw), columns, pixel_rows))
        # Whether bands are mapped to pixels before they are averaged (clip, abs and offset
        # are not linear) or averaged as floats and mapped once (normalize over the result's
        # own min..max, known only at the end; linear, so the order does not matter).
        self.deferred = how.value == "normalize" and value_range is None
        self.maxval = pic.maxval

    def align(self, rows: int) -> int:
        f = self.result.factor
        return max(f, rows // f * f)

    def add(self, band: Any) -> None:
        from cnncli import images

        if band.ndim == 3 and band.shape[2] not in (1, 3):
            band = band[:, :, 0]
        if not self.deferred:
            band = images.map_values(band, self.how, self.maxval, self.value_range)
        self.result.add(band)

    def show(self, left_title: str, right_title: str) -> None:
        import numpy as np

        from cnncli import images
        from cnncli.render.preview import show_side_by_side

        data = self.pic.data
        # Bands of whole blocks, about a million values each (the block sums are float32).
        f = self.input.factor
        step = f * max(1, (1 << 20) // max(1, f * data[0].size))
        for r0 in range(0, data.shape[0], step):
            self.input.add(data[r0 : r0 + step])
        left = self.input.result()
        right = self.result.result()
        if self.deferred:
            span = (self.result.lo, self.result.hi)
            right = images.map_values(right, self.how, self.maxval, span).astype(np.float32)
        pic = self.pic
        show_side_by_side(
            images.to_rgb8(left, self.maxval if pic.bits != 32 else 255),
            images.to_rgb8(np.rint(right), self.maxval),
            left_title=left_title,
            right_title=right_title,
            console=self.console,
        )


def _regular(path: Path) -> bool:
    """A regular file (not a FIFO, device or directory, which peeking could block on)."""
    import stat

    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


@app.command("filter", help=FILTER_HELP)
def filter_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGE",
            help="Image files, globs, directories or .npy arrays.",
            show_default=False,
        ),
    ],
    kernel: Annotated[
        str,
        typer.Option(
            "--kernel",
            "-k",
            help="Kernel: a name (see 'cnncli kernels'), an inline matrix \"1,0,-1;1,0,-1\", or a .txt/.csv/.json/.npy file.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Output file for one input; format from the extension."
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", help="Directory for the outputs of many inputs (created if missing)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing output files (never an input).")
    ] = False,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Float result → pixels: clip | abs | normalize | offset [default: per kernel].",
            show_default=False,
        ),
    ] = None,
    gray: Annotated[
        bool,
        typer.Option(
            "--gray",
            help="Convert to gray first: ITU-R 601 luma, exactly Pillow's 'L'; a JPEG's stored "
            "luma is decoded directly, as OpenCV's IMREAD_GRAYSCALE.",
        ),
    ] = False,
    border: Annotated[
        str,
        typer.Option(
            "--border",
            "-b",
            help="reflect101 | reflect | replicate | wrap | constant[=v] (OpenCV/scipy names above).",
        ),
    ] = "reflect101",
    padding: Annotated[
        str, typer.Option("--padding", "-p", help="same | valid | full | N | NY,NX.")
    ] = "same",
    stride: Annotated[
        str,
        typer.Option(
            "--stride",
            "-s",
            help="Stride, one or Y,X. With same padding the output is ⌈n/s⌉ (TensorFlow SAME).",
        ),
    ] = "1",
    dilation: Annotated[str, typer.Option("--dilation", "-d", help="Dilation, one or Y,X.")] = "1",
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="Kernel origin Y,X (0-based) [default: the 'same' split, centre for odd sizes].",
            show_default=False,
        ),
    ] = None,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize",
            help="Divide the kernel by its sum (zero-sum kernels are left alone, with a warning).",
        ),
    ] = False,
    convolve: Annotated[
        bool,
        typer.Option(
            "--convolve", help="Flip the kernel: true convolution instead of correlation."
        ),
    ] = False,
    direction: Annotated[
        bool,
        typer.Option(
            "--direction",
            help="Gradient kernels: the direction atan2(gy, gx) in degrees instead of the magnitude.",
        ),
    ] = False,
    then: Annotated[
        list[str] | None,
        typer.Option(
            "--then",
            help="A CNN stage after the kernel, repeatable in order: relu, maxpool:K[:S], avgpool:K[:S] (alpha is pooled the same way, so it keeps fitting the picture).",
            show_default=False,
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Write unmapped float32 values (.npy, or one-channel .tif)."),
    ] = False,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels",
            help="Refuse images with more pixels than this [default: Pillow's 89,478,485].",
            show_default=False,
        ),
    ] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="Draw input and result side by side in the terminal.")
    ] = False,
    limit: LimitOption = None,
) -> None:
    if max_pixels is not None and max_pixels < 1:
        raise UsageError(f"--max-pixels {max_pixels} is not allowed; use a positive number")
    # --max-pixels N is --limit pixels=N, given last so it wins.
    apply_limits((limit or []) + ([f"pixels={max_pixels}"] if max_pixels is not None else []))
    _warned.clear()
    # Parse everything that can be a usage error before touching any file.
    how = parse_choice(Mapping, mapping, "--map") if mapping is not None else None
    border_name, border_value = _parse_border(border)
    pad = _parse_padding(padding)
    strides = _ints(stride, "stride")
    dilations = _ints(dilation, "dilation")
    anchor_yx = _ints(anchor, "--anchor", minimum=0) if anchor is not None else None
    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir both given; use -o for one input or --out-dir for many")

    from cnncli.filtering import kernels as kmod
    from cnncli.filtering.stages import parse_stage

    stages = [parse_stage(t) for t in (then or [])]
    k = kmod.resolve_kernel(kernel)
    if direction:
        k = kmod.direction_of(k)
    if normalize:
        k, warning = kmod.normalized(k)
        if warning:
            _warn(warning)
    kh, kw = k.spatial
    if anchor_yx is not None and not (anchor_yx[0] < kh and anchor_yx[1] < kw):
        raise UsageError(
            f"--anchor {anchor} is outside the {kh}×{kw} kernel; use 0..{kh - 1},0..{kw - 1}"
        )
    slug = "_".join([k.slug + ("-conv" if convolve else "")] + [st.label for st in stages])
    label = " → ".join(
        [kernel.strip() + (" (convolve)" if convolve else "")] + [st.label for st in stages]
    )
    settings = Settings(
        label,
        k,
        stages,
        pad,
        strides,
        dilations,
        border_name,
        border_value,
        (anchor_yx[0], anchor_yx[1]) if anchor_yx else None,
        convolve,
        gray,
        how,
        raw,
        force,
        max_pixels,
        preview,
    )
    paths, problems = _expand(inputs)
    if not paths and problems:
        raise CnnCliError(
            problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)"
        )
    jobs = _plan(paths, output, out_dir, k, slug, raw, preview)
    if (
        output is not None
        and output.suffix
        and output.suffix.lower() not in (".npy",)
        and raw
        and output.suffix.lower() not in (".tif", ".tiff")
    ):
        raise UsageError(
            f"--raw writes float values, which only .npy and .tif hold; not {output.suffix}"
        )
    # Every file this run reads: no output may replace one, even with --force.
    inputs_all = [j.source for j in jobs]
    kernel_file = Path(os.path.expanduser(kernel.strip()))
    if _regular(kernel_file):
        inputs_all.append(kernel_file)
    _warm_core(k, jobs[0].source, settings)
    from cnncli.render.term import printable  # file names come from the command line

    if len(jobs) == 1 and not problems:
        print(printable(_run_job(jobs[0], settings, inputs_all)))
        return
    _batch(jobs, settings, inputs_all, problems)


def _run_job(job: Job, s: Settings, inputs: list[Path]) -> str:
    """:func:`_process`, with what a reader or the memory can still raise turned into one
    line naming the file (a safety net: the readers name their own errors)."""
    from cnncli.outputs import describe_os_error

    name = _short(job.source)
    try:
        return _process(job, s, inputs)
    except MemoryError:
        raise FileFailed(
            f"{name}: out of memory; use a smaller image or lower the work with --limit"
        ) from None
    except EOFError as err:
        raise FileFailed(f"{name}: truncated or damaged file ({err or 'unexpected end'})") from None
    except OSError as err:
        raise FileFailed(f"{name}: cannot read ({describe_os_error(err)})") from None


def _warm_core(kernel: Kernel, first: Path, s: Settings) -> None:
    """Import the Numba core and load (or, with an empty cache, compile) the path ``kernel``
    takes on the ``first`` image (its pixel type and size, from its header), in a background
    thread, while the main thread decodes the image.

    Importing Numba and loading its cache take ~0.5 s and a first compile ~1 s more; image
    decoding and PNG encoding release the GIL, so much of that overlaps them. The first real
    call waits for a compile still running (Numba's lock) and reuses it.
    """
    import threading

    from cnncli.images import peek

    # Only a regular file is peeked at (a FIFO would block here); a bad first file gives no
    # hint, and the warm-up then loads the default path.
    hint = peek(first) if _regular(first) else None

    def run() -> None:
        # When SciPy is installed, importing Numba imports it only to check its version
        # (~12 ms), and a first compile imports scipy.linalg (~0.1 s, ~10 MiB) only to see
        # whether np.dot & co. can use BLAS; the core uses neither. Hide SciPy during the
        # warm-up (unless something already imported it), then put it back.
        hide = "scipy" not in sys.modules
        if hide:
            sys.modules["scipy"] = None  # type: ignore[assignment]
        try:
            from cnncli.filtering import correlate as convolve

            if hint is None:
                threads = convolve.warm_up(kernel.weights[0])
            else:
                dtype, size = hint
                work = convolve.work_dtype(dtype, s.border, s.border_value)
                threads = convolve.warm_up(kernel.weights[0], size, work)
            for t in threads:
                t.join()
        except Exception:  # only a head start: the real call reports any problem itself
            pass
        finally:
            if hide and "scipy" in sys.modules and sys.modules["scipy"] is None:
                del sys.modules["scipy"]

    threading.Thread(target=run, name="cnncli-warm-core", daemon=True).start()


def _batch(
    jobs: list[Job], settings: Settings, inputs_all: list[Path], problems: list[str]
) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from cnncli.render.term import printable

    err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    failed = len(problems)
    total = len(jobs) + len(problems)
    for p in problems:
        err_console.print(f"cnncli: error: {printable(p)}", markup=False)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
        # The report lines belong on stdout: Rich may move them above the bar only when stdout
        # is that terminal too; piped (`> list.txt`), they must reach the pipe.
        redirect_stdout=sys.stdout.isatty(),
    )
    with progress:
        task = progress.add_task("filtering", total=len(jobs))
        for job in jobs:
            progress.update(task, description=job.source.name)
            try:
                line = _run_job(job, settings, inputs_all)
            except CnnCliError as err:  # options were checked up front; what fails here is per file
                failed += 1
                msg = " ".join(str(err).split())
                name = _short(job.source)
                if not msg.startswith(name):
                    msg = f"{name}: {msg}"
                progress.console.print(f"cnncli: error: {printable(msg)}", markup=False)
            else:
                print(printable(line), flush=True)
            progress.advance(task)
    if failed:
        raise CnnCliError(f"{failed} of {total} files failed")


# --------------------------------------------------------------------------------------------
# cnncli kernels
# --------------------------------------------------------------------------------------------


@app.command("kernels", help=KERNELS_HELP)
def kernels_command(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A kernel name with optional parameters, e.g. gaussian:sigma=2.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOption = None,
) -> None:
    apply_limits(limit)
    from rich.console import Console

    from cnncli.filtering import kernels as kmod
    from cnncli.render.preview import kernel_detail, kernel_table

    console = Console(highlight=False)
    if name is None:
        console.print(kernel_table(kmod.catalogue()))
        return
    console.print(kernel_detail(kmod.resolve_kernel(name)))
