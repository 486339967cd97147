"""The Typer app: each command parses its options, makes one core call, renders, and lets domain
errors through; :func:`main` turns every expected failure into one line on stderr and an exit code.

Commands live in one module each (``shape.py``, ``filter.py``, ``summary.py``) so that no module
imports numpy, numba or PIL at import time: ``cnncli shape`` and ``cnncli summary`` stay fast.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Sequence

import typer

# Typer ≥ 0.29 vendors Click; its exceptions are what the parser raises in non-standalone mode.
from typer._click import exceptions as click_exc

from cnncli.errors import CnnCliError

app = typer.Typer(
    name="cnncli",
    help=(
        "Convolution arithmetic, image filtering and model summaries for CNNs.\n\n"
        "Examples:\n\n"
        "  cnncli shape 224 224 -k 7 -s 2 -p 3 --in-channels 3 --out-channels 64\n\n"
        "  cnncli shape 6x6 -k 3 --explain\n\n"
        "  cnncli filter samples/coffee.png -k sobel -o edges.png\n\n"
        "  cnncli summary resnet50"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    # A callback keeps cnncli a group of commands even while only one command is registered.
    pass


COMMANDS = {
    "shape": "shape",
    "filter": "filter",
    "kernels": "kernels",
    "summary": "summary",
    "convert": "convert",
}


def _register(argv: Sequence[str]) -> None:
    """Import the module of the command being run, or every command module for help.

    Building Click commands costs milliseconds each, and shape's start-up budget is tight.
    """
    import importlib

    wanted = COMMANDS.get(argv[0]) if argv and argv[0] in COMMANDS else None
    for name in sorted(set(COMMANDS.values())) if wanted is None else [wanted]:
        try:
            importlib.import_module(f"cnncli.cli.{name}")
        except ModuleNotFoundError as err:  # a command still being built is simply absent
            if err.name != f"cnncli.cli.{name}":
                raise


def fail(message: str, code: int) -> None:
    """Print one line on stderr and exit: whitespace folded, control characters escaped."""
    from cnncli.render.term import printable

    message = printable(" ".join(message.split()))
    sys.stderr.write(f"cnncli: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


#: Commands whose start-up imports numpy, Pillow and Numba (see :func:`_pause_gc`).
HEAVY_START = ("filter",)
_gc_paused = False


def _pause_gc() -> None:
    """No garbage collection while a ``cnncli filter`` process imports numpy, Pillow and Numba.

    Those imports make ~0.5 million objects that live until the process ends, and the collector
    scanned them over and over as they came (~135 collections, one of them full): 80-110 ms of a
    1.1 s run on the development machine, for no garbage. :func:`start_up_done` freezes what
    the start-up made and turns collection back on once the Numba core is loaded. Only the
    console script's own process pauses (``main()`` without arguments): a library caller's
    collector is left alone.
    """
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def start_up_done() -> None:
    """The start-up's objects are made: move them out of the collector's sight for good
    (``gc.freeze``: later collections never scan them again) and let it run, for the cyclic
    garbage of the work itself (a batch of many files). Does nothing unless :func:`_pause_gc`
    paused it; safe to call from any thread, more than once."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the app, map errors to one stderr line and an exit code."""
    if argv is None and sys.argv[1:2] and sys.argv[1] in HEAVY_START:
        _pause_gc()
    from cnncli import limits, outputs

    limits.configure()
    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that cannot show "→" or "×" (PYTHONIOENCODING=ascii, LANG=C on
        # old Pythons) gets \u2192 escapes instead of a UnicodeEncodeError.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    if argv is None:
        outputs.install_signal_handlers()
    try:
        _main(argv)
    except SystemExit as done:
        if argv is None and "numba" in sys.modules:
            _end_process(done.code)
        raise
    finally:
        limits.configure()  # a caller of main([...]) gets the defaults back
        start_up_done()  # a run that ended before its start-up did (a usage error, --help)


def _end_process(code: object) -> None:
    """End a console-script run that loaded Numba without Python's teardown.

    Freeing Numba's loaded machine code and LLVM objects at interpreter exit takes 60-110 ms,
    as long as the whole 12-MP Sobel filter itself. By now every output file is closed and
    renamed into place (atomic writes), Numba wrote its cache when it compiled, and only idle
    worker threads remain; so flush the two streams and leave. Only the real entry point does
    this (``argv is None``): a caller of ``main([...])`` gets its SystemExit as usual.
    """
    status = code if isinstance(code, int) else (0 if code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(status)


def _main(argv: Sequence[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _register(args)
    try:
        rv = app(args=args, prog_name="cnncli", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as err:
        if err.ctx is not None:
            sys.stdout.write(err.ctx.get_help() + "\n")
        raise SystemExit(2) from None
    except click_exc.UsageError as err:
        where = (
            f"cnncli {err.ctx.info_name}" if err.ctx and err.ctx.info_name != "cnncli" else "cnncli"
        )
        fail(f"{err.format_message()} (see '{where} --help')", 2)
    except CnnCliError as err:
        fail(str(err), err.exit_code)
    except typer.Abort as err:
        # Click turns KeyboardInterrupt *and* EOFError into Abort; an EOFError is a reader
        # meeting a truncated file, not the user stopping the run.
        if isinstance(err.__cause__, EOFError) and not os.environ.get("CNNCLI_DEBUG"):
            fail(f"internal error: unexpected end of data: {err.__cause__}", 1)
        fail("aborted", 130)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except MemoryError:
        fail(
            "out of memory; lower the work with smaller inputs, or the limits with --limit "
            "(see 'cnncli COMMAND --help')",
            1,
        )
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
    except click_exc.ClickException as err:
        fail(err.format_message(), err.exit_code or 1)
    except OSError as err:
        # Files are read and written through code that names them; an OSError reaching here
        # is standard output failing (a full disk, a closed descriptor).
        if err.errno in (errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT):
            _stdout_lost(err)
        if os.environ.get("CNNCLI_DEBUG"):
            raise
        fail(
            f"internal error: {type(err).__name__}: {err} (set CNNCLI_DEBUG=1 for the traceback)", 1
        )
    except Exception as err:  # a bug, not bad input: still one line unless asked for the traceback
        if os.environ.get("CNNCLI_DEBUG"):
            raise
        fail(
            f"internal error: {type(err).__name__}: {err} (set CNNCLI_DEBUG=1 for the traceback)", 1
        )
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
    except OSError as err:  # stdout on a full disk (`> /dev/full`), a closed descriptor
        _stdout_lost(err)
    raise SystemExit(rv if isinstance(rv, int) else 0)


def _stdout_lost(err: OSError) -> None:
    """Stdout refused our output: say so once on stderr; nothing more goes to stdout."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    fail(f"cannot write to standard output ({err.strerror or err})", 1)
