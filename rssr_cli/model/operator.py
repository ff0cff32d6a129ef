"""Neural-operator prior (NeurOp-Diff, Xu et al. 2025): LR encoder, local-ensemble query at any HR grid,
Galerkin-type attention (Cao 2021, linear in pixel count), and a head giving an HR estimate + prior features."""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
from torch import nn
from torch.nn import functional as F

from rssr_cli.model.resample import bicubic_at, neighbours

# HR tokens per row block at inference: the block's temporaries (~600 floats per token) stay within a few MB
# of cache and are recycled by the allocator; much smaller blocks pay Python overhead per block.
BLOCK_TOKENS = 8192


class PriorOutput(NamedTuple):
    estimate: torch.Tensor  # [B, C, H, W] HR estimate (bicubic base + learned residual)
    features: torch.Tensor  # [B, feat_channels, H, W] HR prior feature map for the denoiser


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv, scaled residual, no batch norm."""

    def __init__(self, width: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class Encoder(nn.Module):
    """EDSR-baseline-like LR encoder (no upsampler): [B,C,h,w] -> [B,width,h,w]."""

    def __init__(self, *, in_channels: int, width: int, blocks: int):
        super().__init__()
        self.head = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return h + self.tail(self.body(h))


class GalerkinAttention(nn.Module):
    """Softmax-free attention out = Q (LN(K)^T LN(V)) / n per head: O(n d^2), no n x n map."""

    def __init__(self, *, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.head_dim = width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.norm_k = nn.LayerNorm(self.head_dim)
        self.norm_v = nn.LayerNorm(self.head_dim)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        # Kept in the token-major layout [B, n, heads, d] throughout: the LayerNorms run on a contiguous last
        # axis and no [B, heads, n, d] copy is made (same arithmetic as permuting first; ~2x faster on CPU).
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).unbind(2)
        k, v = self.norm_k(k), self.norm_v(v)
        context = torch.einsum("bnhd,bnhe->bhde", k, v) / n
        y = torch.einsum("bnhd,bhde->bnhe", q, context)
        return self.out(y.reshape(b, n, -1))

    # --- inference in row blocks: the same arithmetic, split at the one place it couples all tokens ------------
    def kv_map(self) -> tuple[torch.Tensor, ...]:
        """The K and V projections with their per-head LayerNorm's centring folded in, for context_sum.

        LN(k) = centred(k) * rstd * gamma + beta, and centring is linear: folding it into the projection leaves
        only a per-(token, head) rstd to compute (as one small matmul), where layer_norm over 12-wide rows is slow
        on CPU. Returns (weight [2W, W], bias [2W], group-mean matrix [2W, 2*heads], gamma [2W], beta [2W])."""
        width, d = self.out.weight.shape[0], self.head_dim
        groups = 2 * self.heads
        mean = torch.block_diag(*[torch.full((d, 1), 1.0 / d, device=self.out.weight.device)] * groups)  # [2W, groups]
        centre = torch.eye(2 * width, device=mean.device) - mean @ mean.t() * d  # I - block-diagonal means
        weight, bias = centre @ self.qkv.weight[width:].float(), centre @ self.qkv.bias[width:].float()
        gamma = torch.cat([self.norm_k.weight.repeat(self.heads), self.norm_v.weight.repeat(self.heads)]).float()
        beta = torch.cat([self.norm_k.bias.repeat(self.heads), self.norm_v.bias.repeat(self.heads)]).float()
        return weight, bias, mean, gamma, beta

    def context_sum(self, x: torch.Tensor, kv_map: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """sum over the tokens x [T, width] of LN(K)^T LN(V) per head -> [heads, d, d] (not yet divided by n)."""
        weight, bias, mean, gamma, beta = kv_map
        t, width, d = x.shape[0], x.shape[1], self.head_dim
        centred = torch.addmm(bias, x, weight.t())  # [T, 2W]: k | v, each head's features centred
        var = (centred * centred) @ mean  # [T, 2*heads]
        rstd = var.add_(self.norm_k.eps).rsqrt_()
        normed = torch.addcmul(beta, (centred.view(t, -1, d) * rstd[..., None]).view(t, -1), gamma)
        full = normed[:, :width].t() @ normed[:, width:]  # [W, W]; its diagonal blocks are the heads' K^T V
        return torch.stack([full[h * d : (h + 1) * d, h * d : (h + 1) * d] for h in range(self.heads)]).float()

    def affine(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With the context (K^T V / n) known, the whole attention is one affine map per token:
        out(Q C) = x (Wq^T C Wout^T) + (bq C Wout^T + bout) -> (matrix [width, width], bias [width])."""
        width = self.out.weight.shape[0]
        c = torch.block_diag(*context)  # head h maps q's features (h, d) to y's features (h, e)
        w_q, b_q = self.qkv.weight[:width].float(), self.qkv.bias[:width].float()
        w_out = self.out.weight.float()
        return w_q.t() @ c @ w_out.t(), (b_q @ c) @ w_out.t() + self.out.bias.float()


class OperatorLayer(nn.Module):
    """Galerkin attention + pointwise MLP, each with a residual (pre-norm on the MLP only: Galerkin normalizes K, V)."""

    def __init__(self, *, width: int, heads: int):
        super().__init__()
        self.attn = GalerkinAttention(width=width, heads=heads)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(self.norm(x))

    def apply_(self, x: torch.Tensor, attn: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """forward() on a block of tokens [T, width] in place, the attention given as its affine map (attn.affine)."""
        matrix, bias = attn
        x.add_(torch.addmm(bias, x, matrix))
        return x.add_(self.mlp(self.norm(x)))


class NeuralOperatorPrior(nn.Module):
    """LR window + any HR grid (pixel centres in LR pixels, cell = HR pixel size) -> HR estimate and features."""

    def __init__(
        self,
        *,
        in_channels: int = 1,
        enc_width: int = 48,
        enc_blocks: int = 6,
        width: int = 64,
        attn_layers: int = 2,
        heads: int = 4,
        feat_channels: int = 16,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.encoder = Encoder(in_channels=in_channels, width=enc_width, blocks=enc_blocks)
        # Lifting of [feature, rel_y, rel_x, cell_y, cell_x] split into its linear parts, so the feature
        # part runs once at LR resolution and only the cheap offset/cell terms are added per HR pixel.
        self.lift_feature = nn.Conv2d(enc_width, width, 1)
        self.lift_rel_y = nn.Linear(1, width, bias=False)
        self.lift_rel_x = nn.Linear(1, width, bias=False)
        self.lift_cell = nn.Linear(2, width, bias=False)
        self.layers = nn.ModuleList([OperatorLayer(width=width, heads=heads) for _ in range(attn_layers)])
        self.head_norm = nn.LayerNorm(width)
        self.head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, in_channels + feat_channels))

    def query(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Local ensemble: area-weighted sum over the 4 nearest LR features of the lifted vectors -> [B,H,W,width].

        Channels-last throughout: one gather per neighbour yields contiguous [B,H,W,width] rows, the per-row and
        per-column offset terms broadcast in, and the weighted sum accumulates in place (no per-neighbour permutes)."""
        lifted = self.lift_feature(feat).permute(0, 2, 3, 1)  # [B, h, w, width], once at LR size
        b, h, w, width = lifted.shape
        flat = lifted.reshape(b, h * w, width)
        cell_term = self.lift_cell(cell)[:, None, None, :]  # [B,1,1,width]
        columns = [
            (ix, self.lift_rel_x(rx[..., None])[:, None, :, :], wx) for ix, rx, wx in neighbours(xs, w)
        ]  # once, not per row
        out = None
        for iy, ry, wy in neighbours(ys, h):
            row_term = self.lift_rel_y(ry[..., None])[:, :, None, :] + cell_term  # [B,H,1,width]
            for ix, column_term, wx in columns:
                index = (iy[:, :, None] * w + ix[:, None, :]).reshape(b, -1, 1).expand(-1, -1, width)
                f = torch.gather(flat, 1, index).view(b, iy.shape[1], ix.shape[1], width)
                act = F.gelu(f.add_(row_term).add_(column_term))
                weight = (wy[:, :, None] * wx[:, None, :])[..., None]  # [B,H,W,1]
                out = act.mul_(weight) if out is None else out.addcmul_(act, weight)
        assert out is not None
        return out

    def forward(
        self, lr: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor, *, features: bool = True
    ) -> PriorOutput:
        """features=False: the estimate only (PriorOutput.features has 0 channels), e.g. for a prior-only run.

        With autograd on (training) the window runs whole; without (inference) it runs in row blocks of the HR
        grid (forward_blocked): the same arithmetic in a bounded, reused working set."""
        feat = self.encoder(lr)
        n_out = self.in_channels + (self.feat_channels if features else 0)
        if torch.is_grad_enabled():
            y = self._forward_whole(feat, ys, xs, cell, n_out)
        else:
            y = self.forward_blocked(feat, ys, xs, cell, n_out)
        residual, feature_map = y[:, : self.in_channels], y[:, self.in_channels :]
        return PriorOutput(bicubic_at(lr, ys, xs) + residual, feature_map)

    def _head(self, x: torch.Tensor, n_out: int) -> torch.Tensor:
        """The MLP head on tokens [..., width] -> [..., n_out] (the first n_out of its outputs)."""
        last = cast(nn.Linear, self.head[-1])
        return F.linear(self.head[:-1](self.head_norm(x)), last.weight[:n_out], last.bias[:n_out])

    def _forward_whole(
        self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor, n_out: int
    ) -> torch.Tensor:
        tokens = self.query(feat, ys, xs, cell)
        b, hh, ww, width = tokens.shape
        x = tokens.reshape(b, hh * ww, width)
        for layer in self.layers:
            x = layer(x)
        return self._head(x, n_out).view(b, hh, ww, -1).permute(0, 3, 1, 2)

    def forward_blocked(
        self,
        feat: torch.Tensor,
        ys: torch.Tensor,
        xs: torch.Tensor,
        cell: torch.Tensor,
        n_out: int,
        *,
        block_tokens: int = BLOCK_TOKENS,
    ) -> torch.Tensor:
        """Encoder features -> head outputs [B, n_out, H, W], one sample at a time in blocks of HR rows.

        Only one sample's token tensor [H*W, width] is held; every per-pixel temporary (gather, GELU, qkv,
        MLP hidden) lives for one block of about block_tokens tokens, so the allocator reuses the same
        few MB instead of faulting in fresh pages for window-sized activations. Galerkin attention couples
        all tokens only through K^T V: it is summed over the blocks first (fused into the pass before),
        then applied block by block as one affine map (GalerkinAttention.affine)."""
        lifted = self.lift_feature(feat).permute(0, 2, 3, 1).contiguous()  # [B, h, w, width], once at LR size
        b, h, w, width = lifted.shape
        hh, ww = ys.shape[1], xs.shape[1]
        n = hh * ww
        cell_term = self.lift_cell(cell)  # [B, width]
        out = feat.new_empty((b, n_out, hh, ww), dtype=torch.float32)
        step = max(1, block_tokens // ww)
        blocks = [slice(r, min(r + step, hh)) for r in range(0, hh, step)]
        layers = [cast(OperatorLayer, layer) for layer in self.layers]
        last = len(layers)
        kv_maps = [layer.attn.kv_map() for layer in layers]
        for i in range(b):
            flat = lifted[i].reshape(h * w, width)
            rows = [
                (iy[0], self.lift_rel_y(ry[0, :, None]) + cell_term[i], wy[0])
                for iy, ry, wy in neighbours(ys[i : i + 1], h)
            ]
            columns = [(ix[0], self.lift_rel_x(rx[0, :, None]), wx[0]) for ix, rx, wx in neighbours(xs[i : i + 1], w)]
            x = torch.empty((n, width), dtype=torch.float32, device=feat.device)
            affines: list[tuple[torch.Tensor, torch.Tensor]] = []  # layer s's attention, once its context is summed
            # stage s: apply layer s-1 (stage 0: the query), then sum layer s's context (last stage: the head)
            for stage in range(last + 1):
                context = None
                for block in blocks:
                    xb = x[block.start * ww : block.stop * ww]
                    if stage == 0:
                        self._query_block(
                            flat, w, [(iy[block], rt[block], wy[block]) for iy, rt, wy in rows], columns, xb
                        )
                    else:
                        layers[stage - 1].apply_(xb, affines[stage - 1])
                    if stage < last:
                        part = layers[stage].attn.context_sum(xb, kv_maps[stage])
                        context = part if context is None else context.add_(part)
                    else:
                        y = self._head(xb, n_out).view(block.stop - block.start, ww, n_out)
                        out[i, :, block].copy_(y.permute(2, 0, 1))
                if context is not None:
                    affines.append(layers[stage].attn.affine(context.div_(n)))
        return out

    def _query_block(self, flat: torch.Tensor, w: int, rows, columns, out: torch.Tensor) -> None:
        """query() for a block of HR rows of one sample into out [R*W, width]: the same sums in the same order."""
        width = flat.shape[1]
        acc = out.view(rows[0][0].shape[0], columns[0][0].shape[0], width)
        first = True
        for iy, row_term, wy in rows:
            for ix, column_term, wx in columns:
                f = flat.index_select(0, (iy[:, None] * w + ix[None, :]).reshape(-1)).view(acc.shape)
                act = F.gelu(f.add_(row_term[:, None, :]).add_(column_term[None]))
                weight = (wy[:, None] * wx[None, :])[..., None]
                if first:
                    torch.mul(act, weight, out=acc)
                    first = False
                else:
                    acc.addcmul_(act, weight)


def grid_tensors(height: int, width: int, y0: float, x0: float, dy: float, dx: float, *, batch: int = 1, device=None):
    """ys [B,H], xs [B,W], cell [B,2] for a regular HR grid (the torch mirror of grid.HRGrid)."""
    ys = y0 + (torch.arange(height, dtype=torch.float32, device=device) + 0.5) * dy
    xs = x0 + (torch.arange(width, dtype=torch.float32, device=device) + 0.5) * dx
    cell = torch.tensor([dy, dx], dtype=torch.float32, device=device)
    return ys.expand(batch, -1), xs.expand(batch, -1), cell.expand(batch, -1)
