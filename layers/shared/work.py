"""A fixed amount of pure-Python CPU work, for the ``cpu`` experiment's handlers.

Theory of operation
-------------------
:func:`burn` runs FNV-1a (32-bit; Fowler, Noll and Vo's hash, the one ``isthe.com/chongo/tech/comp/fnv``
specifies) over the low bytes of ``0 .. n-1``, one Python bytecode loop iteration per byte.  It is chosen
for what it does *not* do: it calls no C function that could release the GIL (``hashlib`` releases it for
inputs over 2047 bytes, ``zlib`` and ``time.sleep`` always do), allocates nothing that grows, and touches no
I/O, so a thread running it holds the GIL for the whole call and an event loop running it runs nothing else.
The result is deterministic, so the experiment's verifier can check that the server really did the work
(:func:`expected` computes the same number in the harness).

About 0.25 µs per iteration on CPython 3.11 on this project's development machine: ``n = 20_000`` is
roughly 5 ms of one core (the fastest of repeated timings; a busy machine makes it longer).
"""

from __future__ import annotations

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
#: The bound a handler accepts for ``n``: 2,000,000 iterations is about a second of CPU, enough to
#: see anything and small enough that a typo cannot park a worker for minutes.
MAX_N = 2_000_000


def burn(n: int) -> int:
    """FNV-1a over the low bytes of ``0 .. n-1``; pure Python, holds the GIL throughout."""
    h = FNV_OFFSET
    for i in range(n):
        h = ((h ^ (i & 0xFF)) * FNV_PRIME) & 0xFFFFFFFF
    return h


def expected(n: int) -> dict[str, int]:
    """The JSON body a ``/cpu?n=N`` handler answers: what the verifier compares against."""
    return {"n": n, "fnv1a": burn(n)}


def parse_n(raw: str | None, default: int = 20_000) -> int | None:
    """``n`` from a query string value: an integer in 0..MAX_N, else None (the handler answers 422)."""
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        return None
    return n if 0 <= n <= MAX_N else None
