"""The import string a traced server loads: ``layercake.trace.target:app``.

Building the app happens at import, in each server (worker) process, as for every app
module -- some servers (hypercorn) read the attribute with ``eval`` over the module's
namespace, so it must be a real global.  See :mod:`layercake.trace.instrumented`.
"""

from layercake.trace.instrumented import from_environment

app = from_environment()
