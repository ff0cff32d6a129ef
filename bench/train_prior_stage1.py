import sys

import torch

sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))
from pathlib import Path

from rssr_cli.model.operator import NeuralOperatorPrior
from rssr_cli.training.data import PatchSampler, find_images, load_images
from rssr_cli.training.trainer import TrainConfig, Trainer, prior_loss, validate_prior

out = Path(sys.argv[1]); steps = int(sys.argv[2])
torch.manual_seed(0)
uc = load_images(find_images(['../shared/data/ucmerced/train']))
s2 = load_images(find_images(['../shared/data/scenes/sentinel2_l1c_b2348_10m.tif']))
val_paths = find_images(['../shared/data/ucmerced/val'])[::10]
val = load_images(val_paths)
images = uc + s2
weights = [1.0] * len(uc) + [len(uc) / 3.0]  # S2 scene: 25% of samples
cfg_model = dict(in_channels=1, enc_width=48, enc_blocks=6, width=48, attn_layers=2, heads=4, feat_channels=16)
op = NeuralOperatorPrior(**cfg_model)
sampler = PatchSampler(images, weights, lr_size=32, query=24, scale_min=1.0, scale_max=8.0, seed=0)
cfg = TrainConfig(steps=steps, batch_size=32, lr=4e-4, val_every=500, save_every=250, threads=2)
def v(m):
    a, b = validate_prior(m, val, 4.0)
    return {"score": a - b, "psnr": a, "bicubic": b}
t = Trainer(op, prior_loss, sampler, out, cfg, validate=v, meta={"operator": cfg_model, "data": ["ucmerced/train", "sentinel2_l1c_b2348_10m.tif (25%)"], "scales": [1.0, 8.0]},
            progress=lambda s, d: print(s, d, flush=True))
if (out / 'last.json').exists():
    t.resume(out / 'last')
t.run()
