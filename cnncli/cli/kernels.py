"""``cnncli kernels``: the kernel library as a table, or one kernel in full.

numpy is imported when the command runs (the kernel catalogue), never at import.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cnncli.cli import app
from cnncli.cli.options import LimitOption, apply_limits

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
    from cnncli.render.kernels import kernel_detail, kernel_table

    console = Console(highlight=False)
    color = console.color_system is not None
    if name is None:
        console.print(kernel_table(kmod.catalogue(), color=color))
        return
    console.print(kernel_detail(kmod.resolve_kernel(name), color=color, width=console.width))
