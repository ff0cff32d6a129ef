"""The guided sharpening network: a residual CNN on the output grid (as DSen2, Lanaras et al. 2018), made
scale-aware so one model serves any target resolution.

Inputs, all on the output grid: the coarse band resampled (bicubic) from its native pixels, the guide bands
(the 10 m bands, on the same grid), the coarse band's identity, and two scales: the band's (native / output
pixel) and the guides' (guide information resolution / output pixel). The output is the band plus a learned
residual, in the band's standardized units. No normalisation layer and no global pooling: a pixel depends only
on its receptive field (RECEPTIVE_RADIUS), so windows with that much halo give tile-independent output.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from rssr_cli.core.errors import CheckpointError
from rssr_cli.sharpen.bands import GUIDE_BANDS, GUIDED_BANDS, MAX_GUIDED_SCALE

# Keys' parameter of the cubic that resampled the sharpener's inputs (the coarse band, the guides) and its
# back-projection residual in training: part of the shipped models' contract, like their band order. It is not the
# bicubic of `upscale -m bicubic` and of Wald's `bicubic` row (kernels.KEYS_A = -0.5): run with -0.5 instead, v2's
# guided outputs lose 3-12 % of their PSF consistency (the fixture's B10 falls below bicubic's). A retrained
# sharpener can take -0.5 and drop this constant.
SHARPENER_CUBIC_A = -0.75

DEFAULT_SPEC: dict[str, Any] = {"width": 32, "blocks": 6}
TINY_SPEC: dict[str, Any] = {"width": 8, "blocks": 1}


class GuidedSharpener(nn.Module):
    """conv -> `blocks` residual blocks (conv-ReLU-conv) -> conv, added to the resampled band."""

    card: dict[str, Any]  # set when loaded from a file (load_sharpener)

    def __init__(
        self, *, width: int = 32, blocks: int = 6, guides: int = len(GUIDE_BANDS), bands: int = len(GUIDED_BANDS)
    ):
        super().__init__()
        self.width, self.blocks, self.guides, self.bands = width, blocks, guides, bands
        conv = lambda cin, cout: nn.Conv2d(cin, cout, 3, padding=1, padding_mode="replicate")  # noqa: E731
        self.head = conv(1 + guides + bands + 2, width)
        self.body = nn.ModuleList(
            nn.Sequential(conv(width, width), nn.ReLU(inplace=True), conv(width, width)) for _ in range(blocks)
        )
        self.tail = conv(width, 1)
        nn.init.zeros_(self.tail.weight)
        assert self.tail.bias is not None
        nn.init.zeros_(self.tail.bias)  # starts as bicubic

    @property
    def receptive_radius(self) -> int:
        return 2 + 2 * self.blocks

    def forward(
        self,
        band: torch.Tensor,
        guides: torch.Tensor,
        band_index: torch.Tensor,
        scale: torch.Tensor,
        guide_ratio: torch.Tensor,
    ) -> torch.Tensor:
        """band [N,1,H,W], guides [N,G,H,W] (standardized); band_index [N] (into GUIDED_BANDS); scale, guide_ratio [N]."""
        n, _, h, w = band.shape
        identity = nn.functional.one_hot(band_index.long(), self.bands).to(band.dtype)
        scales = torch.stack([torch.log2(scale.float()), torch.log2(guide_ratio.float())], dim=1).to(band.dtype)
        constants = torch.cat([identity, scales], dim=1)[:, :, None, None].expand(n, -1, h, w)
        x = self.head(torch.cat([band, guides, constants], dim=1))
        for block in self.body:
            x = x + block(x)
        return band + self.tail(torch.relu(x))


def build_sharpener(spec: Optional[dict[str, Any]] = None) -> GuidedSharpener:
    return GuidedSharpener(**(spec if spec is not None else DEFAULT_SPEC))


def band_index(name: str) -> int:
    return GUIDED_BANDS.index(name)


# ---------------------------------------------------------------------------------------------- checkpoint

MAX_PARAMETERS = 5_000_000


def save_sharpener(model: GuidedSharpener, path: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Weights as safetensors with the card (spec, band rule, training record) embedded; returns the path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    card = copy.deepcopy(card)
    card.update(
        kind="rssr-guided-sharpener",
        spec={"width": model.width, "blocks": model.blocks},
        guide_bands=list(GUIDE_BANDS),
        guided_bands=list(GUIDED_BANDS),
        max_guided_scale={str(k): v for k, v in MAX_GUIDED_SCALE.items()},
    )
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(tmp),
        metadata={"card": json.dumps(card)},
    )
    os.replace(tmp, path)
    return path


def load_sharpener(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> GuidedSharpener:
    """A sharpener from its file alone; CheckpointError (one line) for anything that is not one."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            card = json.loads((handle.metadata() or {}).get("card", "{}"))
        if card.get("kind") != "rssr-guided-sharpener":
            raise CheckpointError(f"{path} is not an rssr guided sharpener")
        spec = {"width": int(card["spec"]["width"]), "blocks": int(card["spec"]["blocks"])}
        if tuple(card["guide_bands"]) != GUIDE_BANDS or tuple(card["guided_bands"]) != GUIDED_BANDS:
            raise CheckpointError(f"{path}: its band rule differs from this rssr version's")
        if spec_parameter_count(spec) > MAX_PARAMETERS:  # before any allocation
            raise CheckpointError(f"{path}: too large for a sharpener")
        model = build_sharpener(spec)
        model.load_state_dict(load_file(str(path)))
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"cannot load guided sharpener {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    card["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    model.card = card
    return model.eval().to(device)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spec_parameter_count(spec: dict[str, Any]) -> int:
    """The parameters a spec builds, counted on torch's meta device (no memory allocated, whatever the width)."""
    with torch.device("meta"):
        return parameter_count(build_sharpener(spec))
