"""``python -m cnncli``."""

from cnncli.cli import main

main()
