"""Errors that are the user's to fix: each carries a one-line message and an exit status.

The CLI catches :class:`LayercakeError` and prints only its message -- a mistyped
layer name deserves a list of the right names, not a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class LayercakeError(Exception):
    """A problem the user can fix; ``exit_code`` follows the shell's conventions (2: usage)."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class UnknownName(LayercakeError):
    """An unknown layer or server name; the message lists the valid choices."""

    exit_code = 2

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")


class MissingPackage(LayercakeError):
    """An optional server or tool whose package is not installed."""

    def __init__(self, what: str, package: str, extra: str | None) -> None:
        self.what, self.package, self.extra = what, package, extra
        # From the checkout, never from PyPI: the "layercake" there is an unrelated project,
        # so a bare ``pip install 'layercake[servers]'`` would install someone else's code.
        # ``extra=None``: a package no extra brings (deliberately), named on its own.
        how = (
            f"install it from the layercake checkout with: pip install -e '.[{extra}]'"
            if extra
            else f"install it with: pip install {package}"
        )
        super().__init__(f"{what} needs the {package!r} package, which is not installed; {how}")
