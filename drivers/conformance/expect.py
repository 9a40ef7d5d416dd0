"""The two assertions the conformance checks need, without pytest: the checks ship with the
drivers so an installed ``qnode hil`` can run them on a lab bench."""

from __future__ import annotations

import math


class raises:
    """``with raises(InstrumentError) as info:`` — the block must raise one of ``exceptions``;
    the exception is then ``info.value``. Anything else propagates; no exception is a failure."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions
        self.value: BaseException | None = None

    def __enter__(self) -> "raises":
        return self

    def __exit__(self, exc_type, exc, _tb) -> bool:
        names = " or ".join(e.__name__ for e in self.exceptions)
        if exc_type is None:
            raise AssertionError(f"expected {names}, nothing was raised")
        if not issubclass(exc_type, self.exceptions):
            return False
        self.value = exc
        return True


def close(a: float, b: float, rel: float = 1e-6, abs_tol: float = 1e-12) -> bool:
    """Equal up to rounding in an instrument's number format."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)
