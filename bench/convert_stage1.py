"""Turn the prior-stage training state written by bench/train_prior_stage1.py (operator-only EMA weights)
into a loadable rssr model (DEFAULT_SPEC, untrained denoiser, default sampler = prior only).

    python bench/convert_stage1.py runs/prior/best runs/prior_model
"""

import sys
from pathlib import Path

from safetensors.torch import load_file

from rssr_cli.model.checkpoint import save_model
from rssr_cli.model.sr_model import build_sr_model

state, out = Path(sys.argv[1]), Path(sys.argv[2])
tensors = load_file(str(state.with_suffix(".safetensors")))
model = build_sr_model()
model.operator.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
model.sampler_defaults["steps"] = 0
print(save_model(model, out, training={"stages": {"prior": {"state": str(state)}}}))
