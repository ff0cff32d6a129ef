"""Strict JSON for reports: JSON has no NaN or Infinity (PSNR of identical images, empty figures)."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats become None, tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj
