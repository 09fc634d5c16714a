"""Your own application under the microscope: ``--app module:attr`` for serve, trace, scope-diff, bench.

Theory of operation
-------------------
A layer of the ladder is a :class:`layers.Layer`: a name, an interface and an import
string.  A user's application becomes one too -- a :class:`UserApp`, which is a ``Layer``
whose ``contract`` is False -- so everything that runs a layer (the registry's servers
and bridges, the tracer, the in-process cost driver) runs it unchanged.  What does not
apply to it is the contract: no contract checks, no expected statuses, no curl lines for
the contract's routes.

:func:`load_app` resolves ``module:attr`` the way uvicorn and gunicorn do -- the current
directory first on ``sys.path`` (uvicorn's ``--app-dir`` defaults to ``.``), then the
module imported, then the attribute read (dots allowed: ``pkg.mod:factory.app``) -- and
works out the interface unless ``--interface`` says it:

* an ``async def`` function, or an object whose ``__call__`` is one, is **ASGI 3**
  (``async def app(scope, receive, send)``, the ASGI spec's single callable);
* a callable taking three positional arguments is ASGI 3 as well (a class instance whose
  ``__call__`` returns an awaitable);
* a callable taking two is **WSGI** (PEP 3333: ``app(environ, start_response)``).

Anything else is refused with a one-line error and exit status 2, as a bad option is: no
module, no attribute (the module's callables are listed), not callable, or a signature
that is neither.  The import happens in our process for this check, and again in the
server's process, which is given the same ``sys.path`` entry through ``PYTHONPATH``.

Package colours: the profiler charges frames to packages by file (``trace/packages.py``,
``bench/costs.py``).  The app's own module -- its top-level package's directory, or the
single file -- is named to them through :data:`APP_ROOT_ENV`, so your code is coloured as
"the layer's own code", the way ``layers/<name>/`` is, and not as "other".

What it deliberately doesn't do: application factories (``--factory``), ASGI 2's
double callable, or reloading.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layercake.errors import LayercakeError
from layers import Interface, Layer

#: The directory (or file) of the app's own code, for the package classifiers.
APP_ROOT_ENV = "LAYERCAKE_APP_ROOT"
INTERFACES: tuple[Interface, ...] = ("wsgi", "asgi")


@dataclass(frozen=True)
class UserApp(Layer):
    """A user's application, run like a layer; the contract does not apply to it."""

    path_entry: str = ""  # the directory put first on sys.path to import it
    root: str = ""  # its own code: the top-level package's directory, or the module's file
    detected: str = ""  # how the interface was decided, for the user to see
    contract: bool = False

    def env(self) -> dict[str, str]:
        """Environment for a process that serves or measures this app (merged with ours)."""
        pythonpath = os.pathsep.join(p for p in (self.path_entry, os.environ.get("PYTHONPATH", "")) if p)
        return {"PYTHONPATH": pythonpath, APP_ROOT_ENV: self.root}


def _fail(message: str) -> LayercakeError:
    return LayercakeError(f"--app: {message}", 2)


def _kind(obj: Any) -> str:
    name = type(obj).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _positional(obj: Any) -> int | None:
    """How many positional arguments ``obj`` takes when called (None: it cannot tell)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def detect_interface(obj: Any) -> tuple[Interface, str]:
    """(interface, why) for an application object; raises a one-line error when it is neither."""
    if not callable(obj):
        raise _fail(f"that is {_kind(obj)}, not a WSGI or ASGI application (nothing to call)")
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else getattr(obj, "__call__", obj)  # noqa: B004
    if inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(call):
        return "asgi", "an async callable (ASGI 3)"
    count = _positional(obj)
    if count == 3:
        return "asgi", "a callable of three arguments (scope, receive, send: ASGI 3)"
    if count == 2:
        return "wsgi", "a callable of two arguments (environ, start_response: PEP 3333)"
    shown = "an unknown number of arguments" if count is None else f"{count} argument{'s' if count != 1 else ''}"
    raise _fail(
        f"a callable taking {shown} is neither WSGI (environ, start_response) nor ASGI 3 "
        "(scope, receive, send); say which with --interface wsgi|asgi"
    )


def _root_of(module: Any, top: str) -> str:
    """Where the app's own code lives: the top-level package's directory, or the module's file."""
    top_module = sys.modules.get(top, module)
    file = getattr(top_module, "__file__", None) or getattr(module, "__file__", None)  # a namespace package has none
    if file is None:
        return ""
    path = Path(file).resolve()
    return str(path.parent) + os.sep if path.name == "__init__.py" else str(path)


def load_app(target: str, interface: str | None = None, app_dir: str | Path = ".") -> UserApp:
    """Resolve ``module:attr`` into a :class:`UserApp` (see the module docstring)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise _fail(f"{target!r} is not module:attr (e.g. --app myapp:app, --app pkg.web:application)")
    if interface is not None and interface not in INTERFACES:
        raise LayercakeError(f"--interface must be wsgi or asgi, not {interface!r}", 2)
    entry = str(Path(app_dir).resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise _fail(f"no module named {exc.name!r} (looked in {entry} and on sys.path)") from None
        raise _fail(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # the user's module raised while importing: their bug, shown in one line
        raise _fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(
                n
                for n, v in vars(module).items()
                if callable(v) and not n.startswith("_") and getattr(v, "__module__", module_name) == module_name
            )[:12]
            listed = f"; its callables: {', '.join(found)}" if found else ""
            raise _fail(f"module {module_name!r} has no attribute {attr!r}{listed}")
        obj = getattr(obj, part)
    if interface is None:
        chosen, why = detect_interface(obj)
    else:
        if not callable(obj):
            raise _fail(f"{target} is {_kind(obj)}, not a WSGI or ASGI application (nothing to call)")
        chosen, why = interface, "given with --interface"
    return UserApp(
        name=target,  # always module:attr, so it can never be mistaken for a layer's name
        interface=chosen,
        target=target,
        below=None,
        description=f"your application {target}",
        path_entry=entry,
        root=_root_of(module, module_name.split(".", 1)[0]),
        detected=why,
    )


def app_or_layer(layer: str | None, app: str | None, interface: str | None) -> Layer:
    """The command line's choice: a layer by name, or ``--app`` (never both, never neither)."""
    from layers import get_layer

    if app is not None and layer is not None:
        raise LayercakeError(f"give a LAYER or --app, not both (got {layer!r} and --app {app})", 2)
    if app is not None:
        return load_app(app, interface)
    if interface is not None:
        raise LayercakeError("--interface goes with --app (a layer's interface is known)", 2)
    if layer is None:
        raise LayercakeError("give a LAYER (see `layercake layers`) or --app module:attr for your own app", 2)
    return get_layer(layer)


def is_user_app(layer: Layer) -> bool:
    return isinstance(layer, UserApp)
