"""The ``layercake`` command: a thin click group over library functions.

Each module in :mod:`layercake.commands` lists its commands in ``COMMANDS``; this
module gathers them, so adding a command never means editing a shared file.  Errors
that are the user's to fix arrive as :class:`~layercake.errors.LayercakeError` and are
printed as one line with their exit status -- a typo deserves a list of the right
names, not a traceback.  Ctrl-C anywhere is exit status 130 (128 + SIGINT, the shell's
convention) with one line, not click's "Aborted!" and status 1; the long commands catch
it earlier themselves, to write what they measured first (:mod:`layercake.progress`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import click

from layercake import __version__, commands
from layercake.errors import LayercakeError
from layers.shared import django_project


class _Group(click.Group):
    """A group whose commands' LayercakeErrors become one clean line on stderr."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LayercakeError as exc:
            click.echo(f"layercake: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("\nlayercake: interrupted", err=True)
            ctx.exit(130)
        except OSError as exc:
            # A file the user named (--json, --markdown, --out ...) that cannot be written or
            # read: their path to fix, so one line.  OSErrors without a file name are not
            # the user's and keep their traceback.
            if exc.filename is None:
                raise
            click.echo(f"layercake: {exc.filename}: {exc.strerror or exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="layercake")
@click.option(
    "--django-middleware",
    type=click.Choice(list(django_project.MIDDLEWARE)),
    default=None,
    help="The Django layers' middleware, for every command and the servers it starts: none (the default, "
    "equal work) or default (startproject's seven).  Sets $" + django_project.ENV + ".",
)
def cli(django_middleware: str | None) -> None:
    """layercake: the Python web stack, one layer at a time.

    One contract (CONTRACT.md) built at eight layers -- bare WSGI, Werkzeug, Flask, Django,
    bare ASGI, Starlette, FastAPI, Django on ASGI -- served by our own annotated servers
    and the real ones.  Start with `layercake tour`.
    """
    if django_middleware is not None:
        # An environment variable, not a setting: the layer is imported in this process,
        # in each bench subprocess and in every server process, and all of them inherit it.
        os.environ[django_project.ENV] = django_middleware


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


try:
    _register()
except KeyboardInterrupt:  # Ctrl-C while the commands are still being imported (a second or two)
    print("\nlayercake: interrupted", file=sys.stderr)
    raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="layercake")


if __name__ == "__main__":  # python -m layercake.cli
    main(sys.argv[1:])
