"""The guided sharpener's band rule, without torch: which Sentinel-2 bands it serves, at which scales, guided by
which bands, and where its model is. The plan of a band-stack run (stack_plan.py) and `rssr info` decide each
band's method with `guides_for` before any model is loaded; the network itself is model.py's."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Collection, Optional

from safetensors import safe_open

from rssr_cli.backends import bundled_model_paths

GUIDE_BANDS = ("B02", "B03", "B04", "B08")  # the 10 m bands: they guide every coarser band
GUIDED_BANDS = ("B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09", "B10")  # 20 m, then 60 m
BAND_RESOLUTION_M = {"B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20, "B01": 60, "B09": 60, "B10": 60}
GUIDE_RESOLUTION_M = 10
# Largest band scale trained per native resolution (Wald ratios drawn in training): beyond it a band is unguided.
MAX_GUIDED_SCALE = {20: 8.0, 60: 12.0}

SHARPENER_ENV = "RSSR_SHARPENER"  # another guided model than the shipped one (tests, experiments)
SHIPPED_NAME = "sharpen.safetensors"
DEFAULT_SHARPENER_NAME = "rssr-sharpen"  # a sharpener whose card names none


def guided_scale_ok(name: str, scale: float) -> bool:
    """Whether the model was trained for this band at this scale (band native / output pixel)."""
    return name in BAND_RESOLUTION_M and 1.0 < scale <= MAX_GUIDED_SCALE[BAND_RESOLUTION_M[name]] + 1e-6


def guides_for(name: str, scale: float, stack_bands: Collection[str]) -> tuple[str, ...]:
    """The band rule: the guides of band `name` super-resolved at `scale`, or () when it is not guided. A coarse
    band is guided when the stack holds the four 10 m guides and the model was trained for its scale, whatever
    other bands the request holds (the guides are read even when they are not output)."""
    if not guided_scale_ok(name, scale) or not all(guide in stack_bands for guide in GUIDE_BANDS):
        return ()
    return GUIDE_BANDS


def default_sharpener_path() -> Path:
    """RSSR_SHARPENER, else the shipped model (in the wheel's rssr_cli/models, or the repository's models/)."""
    if os.environ.get(SHARPENER_ENV):
        return Path(os.environ[SHARPENER_ENV])
    candidates = [p.parent / SHIPPED_NAME for p in bundled_model_paths()]
    return next((p for p in candidates if p.is_file()), candidates[-1])


def sharpener_name(card: dict[str, Any]) -> str:
    """How outputs and `rssr info` name a sharpener: its card's name."""
    return str(card.get("name") or DEFAULT_SHARPENER_NAME)


# The steps around the sharpener's network: its guides' source (sharpen/apply.py: the native guides resampled, as in
# training), then back-projection onto the native pixels and the bound (sharpen/predict.py). Change this label
# whenever they change: it is part of RSSR_GUIDED_WITH, so a batch redoes a guided output once.
GUIDED_STEPS = "native guides resampled; box back-projection 1 step; guide-supported bound x3"
GUIDED_WITH_TAG = "RSSR_GUIDED_WITH"


def guided_with(card: dict[str, Any]) -> str:
    """What makes a guided band (RSSR_GUIDED_WITH): the sharpener by name and hash, and the steps after it."""
    return f"{sharpener_name(card)} {str(card.get('sha256', ''))[:12]}; {GUIDED_STEPS}"


def guided_with_file(path: Path) -> Optional[str]:
    """guided_with for the sharpener at `path` without loading it (no torch; its hash as load_sharpener records it),
    None when there is no readable one (then a run guides nothing). Hashed once per file version: a batch asks for
    every scene."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _guided_with_version(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _guided_with_version(path: str, _size: int, _mtime_ns: int) -> Optional[str]:
    card = sharpener_card(Path(path))
    try:
        card["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
    return guided_with(card)


def sharpener_card(path: Path) -> dict[str, Any]:
    """The card in a sharpener's header (no weights, no torch); {} when there is no readable one."""
    try:
        with safe_open(str(path), framework="np") as handle:
            card = json.loads((handle.metadata() or {}).get("card", "{}"))
    except (OSError, ValueError, TypeError, json.JSONDecodeError):
        return {}
    return card if isinstance(card, dict) else {}
