"""Plain JSON out of what training and evaluation produce (numpy/torch scalars, paths, NaN)."""

from __future__ import annotations

import math
from pathlib import Path


def jsonable(value):
    """Nested dicts/lists/tuples with tensors' and arrays' scalars as Python numbers, paths as text and
    non-finite floats as null (strict JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
