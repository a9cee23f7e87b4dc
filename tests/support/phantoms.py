"""The phantom cases the tests share, rendered once per test process (each pytest-xdist worker).

``test_images.generate_case`` is deterministic in its arguments (tests/test_phantom_determinism.py);
a longitudinal case takes seconds to render, and several test modules render the same one
(``growth``, seed 0, in the priors pipeline, the archive pipeline, the comparison and the
phantom's own tests).  :func:`generated_case` renders it the first time and hands every caller
its own deep copy, so a test that changes its studies changes nobody else's.
"""

from __future__ import annotations

import copy
import functools
from typing import Any


@functools.cache
def _rendered(name: str, size: str, seed: int, options: tuple[tuple[str, Any], ...]) -> tuple[Any, ...]:
    from test_images import generate_case

    return tuple(generate_case(name, size=size, seed=seed, **dict(options)))


def generated_case(name: str, size: str = "small", seed: int = 0, **options: Any) -> list[Any]:
    """``test_images.generate_case(name, size, seed, **options)``, rendered once per process, copied per call."""
    return copy.deepcopy(list(_rendered(name, size, seed, tuple(sorted(options.items())))))
