"""``python -m layercake`` is the ``layercake`` command."""

from layercake.cli import main

main()
