"""``cnncli filter``: parse the options into a :class:`~cnncli.filtering.pipeline.FilterSpec`,
filter every input through :mod:`cnncli.filtering`, and print one line per file.

numpy, Pillow and the Numba core are imported when a file is filtered, so ``cnncli shape`` and
``cnncli summary`` (which import this module for the help) never pay for them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnncli.cli import app, start_up_done
from cnncli.cli.options import LimitOption, apply_limits, parse_ints, parse_padding
from cnncli.enums import (
    BORDER_ALIASES,
    TORCH_BORDER_NAMES,
    Border,
    Layout,
    Mapping,
    parse_border,
    parse_choice,
)
from cnncli.errors import CnnCliError, UsageError

if TYPE_CHECKING:
    from rich.progress import Progress

    from cnncli.arithmetic import PaddingArg
    from cnncli.filtering.pipeline import FilterJob, FilterResult, FilterSpec, Preview
    from cnncli.images import Picture

FILTER_HELP = """Filter images with a named or custom kernel, as a CNN layer does (correlation).

IMAGE may be files, globs (quoted or not) and directories (their image files). With one input, -o
names the output; with many, --out-dir holds them as <stem>_<kernel>.<ext>. With neither, each
result is written next to its input as <stem>_<kernel>.<ext> (the input's format; .png for GIF;
.npy for .npy input), never over an existing file unless --force, never over an input. With
--preview or --print and neither -o nor --out-dir, nothing is written: the result is only shown;
a .csv/.txt matrix input is printed, not written.

Arrays (.npy) are read and written H×W×C (channels last, as NumPy and TensorFlow hold them); with
--layout chw they are C×H×W, as PyTorch and d2l hold them (a 4-D kernel is PyTorch's
C_out×C_in×kh×kw either way).

Output formats by extension: .png .jpg .tif .webp .bmp (pixels mapped with --map; 16-bit input,
gray or colour, stays 16-bit in PNG/TIFF, gray stays gray, alpha passes through: with stride or
valid padding each output pixel keeps the alpha of the input pixel its window is anchored on) and
.npy (raw float32, no mapping; also .tif with --raw, one channel), .csv and .txt (one map as rows
of numbers, exact float32 values). PNG and TIFF are written by cnncli's own encoders on every core
(PNG: zlib level 1 with the RLE strategy, as OpenCV; TIFF: deflate with the horizontal predictor),
8- or 16-bit, gray or RGB, with alpha; images are made band by band, so a large result never sits
in memory whole.

Matrices: a .csv/.txt input (rows of numbers, as kernel files) with no -o prints its result as an
aligned matrix on stdout; --print does that for any result that fits the terminal.

Several kernels (-k repeated) give one map per kernel, in order: H×W×N in .npy (N×H×W with
--layout chw). As a picture, several maps make a labelled montage (a grid, each map mapped by its
own kernel's default, maps smaller than 64 pixels enlarged); --as-rgb packs exactly three maps into
one colour picture; --split writes one file per map.

Kernel specs (see 'cnncli kernels'): a name with parameters (sobel, sobel-x, sobel-dir,
gaussian:sigma=2, box:size=5, motion:length=9,angle=45, unsharp:amount=1.5, kirsch), an inline
matrix "1,0,-1;1,0,-1;1,0,-1" (rows split by ';'), or a file: .txt/.csv rows, .json nested list
(2-D kh×kw, 3-D C_in×kh×kw summing the channels into one map, 4-D C_out×C_in×kh×kw giving C_out
maps, PyTorch's weight layout), .npy array.

Padding and borders, as the frameworks do it: an explicit --padding (1, 2,1, same, full)
pads with zeros, as PyTorch (padding_mode='zeros') and TensorFlow; without --padding the
picture keeps its size and the border is reflect101, as OpenCV filters photos. --border picks
another (OpenCV name / scipy.ndimage mode / PyTorch padding_mode, all accepted): {borders}.
Every report line names the border used ("border zeros", "no border" when nothing was padded).

Examples:

  cnncli filter samples/seed.csv -k vertical-edge -p valid

  (the course notes' 6×6 example, printed: four rows 0 39 39 0)

  cnncli filter samples/seed.csv -k vertical-edge -p 1

  (zero padding, as PyTorch's F.conv2d(x, k, padding=1): rows -30 0 39 39 0 -9)

  cnncli filter samples/camera.png -k vertical-edge -k horizontal-edge -o edges.png

  (both edge maps side by side, labelled, in one picture)

  cnncli filter samples/coffee.png -k sobel -o coffee_sobel.png

  cnncli filter samples/chelsea.png -k gaussian:sigma=2 -o blur.png

  cnncli filter samples/camera.png -k sobel --preview

  cnncli filter samples/camera.png -k sobel-x --then relu --then maxpool:2

  (one CNN stage, conv → ReLU → pool: writes samples/camera_sobel-x_relu_maxpool2.png)

  cnncli filter samples/seed.csv -k vertical-edge -k horizontal-edge -p 1 --then relu --then maxpool:2 --then conv:samples/kernels/d2l-3d.json

  (two layers: two edge maps, ReLU, pooling, then d2l's two-channel kernel over both)

  cnncli filter 'samples/*.png' -k emboss --gray --out-dir embossed/

  cnncli filter samples/d2l-x-chw.npy --layout chw -k samples/kernels/d2l-3d.json -p valid --print

  (d2l's 2-channel example, C×H×W as d2l holds it: [[56, 72], [104, 120]])
"""
FILTER_HELP = FILTER_HELP.replace(
    "{borders}",
    "; ".join(
        f"{b.value}{'[=v]' if b is Border.CONSTANT else ''} = {cv} / {sp}"
        + (f" / {TORCH_BORDER_NAMES[b]}" if b in TORCH_BORDER_NAMES else "")
        + f" ({b.picture}"
        + (
            ", the default without --padding, as OpenCV)"
            if b is Border.REFLECT101
            else ", zeros: the default with --padding)"
            if b is Border.CONSTANT
            else ")"
        )
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


def _parse_border(text: str | None) -> tuple[Border | None, float]:
    """``--border`` as a :class:`Border` and its constant; (None, 0) when not given."""
    if text is None:
        return None, 0.0
    name, eq, value = text.strip().lower().partition("=")
    border = parse_border(name)
    zeros = name.strip() == TORCH_BORDER_NAMES[Border.CONSTANT]
    if eq and (border is not Border.CONSTANT or zeros):
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


def _parse_padding(text: str | None) -> PaddingArg | None:
    """``--padding``: same | valid | full | N | NY,NX | before:after pairs (cnncli shape's
    parser); None when not given (the size is kept, see pipeline.padding_and_border)."""
    if text is None:
        return None
    t = text.strip().lower()
    if t in ("same", "valid", "full"):
        return t
    try:
        pad = None if t.isalpha() else parse_padding(t)
    except UsageError:
        pad = None
    if pad is None:
        raise UsageError(
            f"--padding {text!r} is not understood; use same, valid, full, a number (1), one "
            "per axis (1,2) or before:after pairs (0:1,1:1)"
        )
    if isinstance(pad, list) and all(isinstance(v, int) for v in pad):
        values = _ints(t, "--padding", minimum=0)
        return values[0] if values[0] == values[1] else (values[0], values[1])
    return pad


def _preview(pic: Picture, shape: tuple[int, ...], how: Mapping, value_range: Any) -> Preview:
    from cnncli.render.preview import FilterPreview

    return FilterPreview(pic, shape, how, value_range)


def _report(result: FilterResult) -> str:
    """The report of one file (stdout), control characters escaped: one line, and the values
    when they are printed (the line then a ``#`` comment, so the text reads back as a matrix)."""
    from cnncli.render.term import printable  # file names come from the command line

    if result.written:
        target = ", ".join(map(str, result.written))
    elif result.target is not None:
        target = str(result.target)
    else:
        target = "stdout" if result.printed is not None else "preview"
    only_printed = result.target is None and result.printed is not None
    line = printable(
        f"{result.source} → {target}: {result.described}, {result.label}, {result.border}"
        + ("" if only_printed else f", map {result.mapping}")
    )
    if result.printed is None:
        return line
    return f"# {line}\n{result.printed.rstrip()}"


@app.command("filter", help=FILTER_HELP)
def filter_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGE",
            help="Image files, globs, directories, .npy arrays (H×W×C; C×H×W with --layout chw) "
            "or .csv/.txt matrices.",
            show_default=False,
        ),
    ],
    kernel: Annotated[
        list[str],
        typer.Option(
            "--kernel",
            "-k",
            help="Kernel: a name (see 'cnncli kernels'), an inline matrix \"1,0,-1;1,0,-1\", or a .txt/.csv/.json/.npy file. Repeatable: one map per kernel, in order.",
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
        str | None,
        typer.Option(
            "--border",
            "-b",
            help="zeros | reflect101 | reflect | replicate | wrap | constant[=v] (OpenCV/scipy/"
            "PyTorch names above) [default: zeros with an explicit --padding, as PyTorch and "
            "TensorFlow; reflect101 without, as OpenCV].",
            show_default=False,
        ),
    ] = None,
    padding: Annotated[
        str | None,
        typer.Option(
            "--padding",
            "-p",
            help="same | valid | full | N | NY,NX | before:after pairs (0:1,1:1); pads with "
            "zeros unless --border [default: the size kept, reflect101 borders, as OpenCV].",
            show_default=False,
        ),
    ] = None,
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
            help="A CNN stage after the kernel, repeatable in order: relu, maxpool:K[:S], avgpool:K[:S], conv:SPEC (another convolution, any kernel spec, with the same --padding, --stride, --dilation, --border and --convolve; alpha follows every stage, so it keeps fitting the picture).",
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
    print_values: Annotated[
        bool,
        typer.Option(
            "--print",
            help="Print the result's values as aligned matrices on stdout (up to 100 rows, as "
            "wide as the terminal); without -o nothing is written. A .csv/.txt matrix input "
            "with no -o is printed anyway.",
        ),
    ] = False,
    as_rgb: Annotated[
        bool,
        typer.Option(
            "--as-rgb",
            help="Write a result of exactly three maps as one colour picture (R, G, B in "
            "kernel order, each mapped by its kernel) instead of a montage.",
        ),
    ] = False,
    split: Annotated[
        bool,
        typer.Option(
            "--split",
            help="Write one file per map: <name>_<kernel>.<ext> after -o, or <input>_<kernel> "
            "beside the input or in --out-dir.",
        ),
    ] = False,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="Axis order of 3-D .npy arrays read and written: hwc (H×W×C, channels last: "
            "NumPy, TensorFlow, pictures) or chw (C×H×W, channels first: PyTorch, d2l).",
        ),
    ] = "hwc",
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
    axes = parse_choice(Layout, layout, "--layout")
    border_name, border_value = _parse_border(border)
    pad = _parse_padding(padding)
    strides = _ints(stride, "stride")
    dilations = _ints(dilation, "dilation")
    anchor_yx = _ints(anchor, "--anchor", minimum=0) if anchor is not None else None
    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir both given; use -o for one input or --out-dir for many")
    if as_rgb and split:
        raise UsageError(
            "--as-rgb packs the maps into one picture, --split writes one file each; give one"
        )
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
        layout=axes,
        print_result=print_values,
        columns=shutil.get_terminal_size().columns,
        as_rgb=as_rgb,
        split=split,
    )
    paths, problems = batch.expand(inputs)
    if not paths and problems:
        raise CnnCliError(
            problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)"
        )
    jobs = batch.plan(paths, output, out_dir, spec)
    batch.check_raw(output, raw)
    read = batch.read_files(jobs, [*kernel, *(st.text for st in spec.convolutions)])
    pipeline.warm_core(note=_note, loaded=start_up_done)
    if len(jobs) == 1 and not problems:
        print(_report(pipeline.filter_file(jobs[0], spec, read, warn=_warn, preview=_preview)))
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
                print(_report(done.result), flush=True)
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
