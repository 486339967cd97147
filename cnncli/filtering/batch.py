"""Many inputs: files, globs and directories → :class:`~cnncli.filtering.pipeline.FilterJob`\\ s
with their output names, and the per-file loop that goes on past a failing file.

No numpy here; the pipeline loads it when the first file is filtered.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnncli.errors import CnnCliError, UsageError
from cnncli.filtering.pipeline import (
    FilterJob,
    FilterResult,
    FilterSpec,
    PreviewMaker,
    Warn,
    filter_file,
    regular,
    short,
)


def expand(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
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
            problems.append(f"{short(arg)}: {why}")
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
    return _unique(paths), problems


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique: list[Path] = []
    for p in paths:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def default_ext(source: Path, spec: FilterSpec) -> str:
    """The extension of an output named after its input: the input's format (.png for one
    that cannot be written; a .csv/.txt matrix stays one when the result is one map, or one
    map a file with --split), .npy for .npy input, raw output, or several maps of a matrix."""
    from cnncli.images import SAVE_FORMATS, is_matrix

    ext = source.suffix.lower()
    if is_matrix(source) and (spec.maps(1) == 1 or spec.split) and not spec.raw:
        return ext
    if spec.raw or ext == ".npy" or is_matrix(source):
        return ".npy"
    # Several maps make a montage (or --as-rgb's colour, or --split's files) in that format.
    return ext if ext in SAVE_FORMATS else ".png"


def check_raw(output: Path | None, raw: bool) -> None:
    """--raw writes floats: refused for an -o picture format that cannot hold them."""
    if output is None or not raw or not output.suffix:
        return
    if output.suffix.lower() not in (".npy", ".tif", ".tiff", ".csv", ".txt"):
        raise UsageError(
            f"--raw writes float values, which only .npy and .tif hold; not {output.suffix}"
        )


def plan(
    paths: list[Path], output: Path | None, out_dir: Path | None, spec: FilterSpec
) -> list[FilterJob]:
    """One job per input: -o for one input, ``<stem>_<slug>.<ext>`` in --out-dir or beside the
    input otherwise; with neither, nothing is written for --preview, --print or a .csv/.txt
    matrix input (its result is printed); two inputs never share an output."""
    from cnncli.images import is_matrix

    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir both given; use -o for one input or --out-dir for many")
    if output is not None and len(paths) > 1:
        raise UsageError(
            f"-o names one output file but {len(paths)} inputs were given; use --out-dir DIR"
        )
    jobs: list[FilterJob] = []
    targets: dict[Path, Path] = {}
    for src in paths:
        if output is not None:
            dest: Path | None = output
        elif out_dir is None and (spec.preview or spec.print_result or is_matrix(src)):
            dest = None
            if spec.split:
                raise UsageError(
                    f"--split writes one file per map, but nothing is written for {src}"
                    + (" (a .csv/.txt matrix is printed)" if is_matrix(src) else "")
                    + "; give -o NAME or --out-dir DIR"
                )
        else:
            folder = out_dir if out_dir is not None else src.parent
            dest = folder / f"{src.stem}_{spec.slug}{default_ext(src, spec)}"
        if dest is not None:
            key = dest.resolve()
            if key in targets:
                raise UsageError(
                    f"{targets[key]} and {src} would both be written to {dest}; "
                    "give them different names or separate --out-dir runs"
                )
            targets[key] = src
        jobs.append(FilterJob(src, dest, out_dir is not None, named=output is not None))
    return jobs


def read_files(jobs: Sequence[FilterJob], kernel_specs: str | Sequence[str]) -> list[Path]:
    """Every file the run reads (the inputs, and each kernel that is a file): no output may
    replace one, even with --force."""
    files = [j.source for j in jobs]
    for text in [kernel_specs] if isinstance(kernel_specs, str) else kernel_specs:
        kernel_file = Path(os.path.expanduser(text.strip()))
        if regular(kernel_file):
            files.append(kernel_file)
    return files


@dataclass(frozen=True)
class Outcome:
    """One file of a batch: its result, or the one line saying why it failed (naming it)."""

    job: FilterJob
    result: FilterResult | None = None
    error: str | None = None


def run(
    jobs: Sequence[FilterJob],
    spec: FilterSpec,
    inputs: Sequence[Path],
    *,
    warn: Warn,
    preview: PreviewMaker | None = None,
    starting: Callable[[FilterJob], None] | None = None,
) -> Iterator[Outcome]:
    """Filter every job in turn; a file that fails is reported as an :class:`Outcome` with its
    error (options were checked up front: what fails here is per file) and the batch goes on.
    ``starting`` is told of each job before it runs (a progress bar)."""
    for job in jobs:
        if starting is not None:
            starting(job)
        try:
            result = filter_file(job, spec, inputs, warn=warn, preview=preview)
        except CnnCliError as err:
            msg = " ".join(str(err).split())
            name = short(job.source)
            yield Outcome(job, error=msg if msg.startswith(name) else f"{name}: {msg}")
        else:
            yield Outcome(job, result)
