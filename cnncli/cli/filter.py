"""``cnncli filter``: parse the options into a :class:`~cnncli.filtering.pipeline.FilterSpec`,
filter every input through :mod:`cnncli.filtering`, and print one line per file.

numpy, Pillow and the Numba core are imported when a file is filtered, so ``cnncli shape`` and
``cnncli summary`` (which import this module for the help) never pay for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnncli.cli import app
from cnncli.cli.options import LimitOption, apply_limits, parse_ints
from cnncli.enums import BORDER_ALIASES, Border, Mapping, parse_border, parse_choice
from cnncli.errors import CnnCliError, UsageError

if TYPE_CHECKING:
    from rich.progress import Progress

    from cnncli.filtering.pipeline import FilterJob, FilterResult, FilterSpec, Preview
    from cnncli.images import Picture

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


def _warn(message: str) -> None:
    from cnncli.render.term import printable  # file names in warnings come from input

    sys.stderr.write(f"cnncli: warning: {printable(' '.join(message.split()))}\n")


def _note(message: str) -> None:
    """A line saying what the run waits for (the first run's compile), on stderr: above the
    progress bar when one is drawn (Rich redirects stderr while it is)."""
    sys.stderr.write(f"cnncli: {message}\n")
    sys.stderr.flush()


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


def _preview(pic: Picture, shape: tuple[int, ...], how: Mapping, value_range: Any) -> Preview:
    from cnncli.render.preview import FilterPreview

    return FilterPreview(pic, shape, how, value_range)


def _line(result: FilterResult) -> str:
    """The report line of one file (stdout), control characters escaped."""
    from cnncli.render.term import printable  # file names come from the command line

    target = result.target if result.target is not None else "preview"
    return printable(
        f"{result.source} → {target}: {result.described}, {result.label}, map {result.mapping}"
    )


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
    from cnncli.filtering import batch, pipeline

    pipeline.start_run()
    # Parse everything that can be a usage error before touching any file.
    how = parse_choice(Mapping, mapping, "--map") if mapping is not None else None
    border_name, border_value = _parse_border(border)
    pad = _parse_padding(padding)
    strides = _ints(stride, "stride")
    dilations = _ints(dilation, "dilation")
    anchor_yx = _ints(anchor, "--anchor", minimum=0) if anchor is not None else None
    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir both given; use -o for one input or --out-dir for many")
    spec = pipeline.build_spec(
        kernel,
        then=then or [],
        direction=direction,
        normalize=normalize,
        warn=_warn,
        padding=pad,
        stride=strides,
        dilation=dilations,
        border=border_name,
        border_value=border_value,
        anchor=(anchor_yx[0], anchor_yx[1]) if anchor_yx else None,
        flip=convolve,
        gray=gray,
        mapping=how,
        raw=raw,
        force=force,
        preview=preview,
    )
    paths, problems = batch.expand(inputs)
    if not paths and problems:
        raise CnnCliError(
            problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)"
        )
    jobs = batch.plan(paths, output, out_dir, spec)
    batch.check_raw(output, raw)
    read = batch.read_files(jobs, kernel)
    pipeline.warm_core(note=_note)
    if len(jobs) == 1 and not problems:
        print(_line(pipeline.filter_file(jobs[0], spec, read, warn=_warn, preview=_preview)))
        return
    _batch(jobs, spec, read, problems)


def _batch(jobs: list[FilterJob], spec: FilterSpec, read: list[Path], problems: list[str]) -> None:
    """Every file in turn under a progress bar (on a terminal); failures are reported as they
    come and counted at the end."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from cnncli.filtering import batch
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

    def preview(pic: Picture, shape: tuple[int, ...], how: Mapping, value_range: Any) -> Preview:
        from cnncli.render.preview import FilterPreview

        return FilterPreview(pic, shape, how, value_range, pause=lambda: _bar_hidden(progress))

    with progress:
        task = progress.add_task("filtering", total=len(jobs))

        def starting(job: FilterJob) -> None:
            progress.update(task, description=job.source.name)

        for done in batch.run(jobs, spec, read, warn=_warn, preview=preview, starting=starting):
            if done.result is None:
                failed += 1
                progress.console.print(
                    f"cnncli: error: {printable(done.error or '')}", markup=False
                )
            else:
                print(_line(done.result), flush=True)
            progress.advance(task)
    if failed:
        raise CnnCliError(f"{failed} of {total} files failed")


@contextmanager
def _bar_hidden(progress: Progress) -> Iterator[None]:
    """The progress bar off the terminal while a preview is drawn, then back below it."""
    if not progress.live.is_started:  # not a terminal: no bar to move
        yield
        return
    progress.stop()  # transient: the bar's lines are erased
    try:
        yield
    finally:
        progress.start()
