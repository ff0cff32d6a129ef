"""Export the EMA weights of a training state (<run>/<stage>/best or last) as a loadable model + card.

    python bench/export_state.py runs/s2-10m/prior/best --init models/aerial.safetensors -o runs/s2-10m/best_model

For evaluating a run while it trains, and for shipping the best state of a run stopped before its last step (the card
records the state, its step and the run's settings from the state's JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rssr_cli.model.checkpoint import load_model, save_model
from rssr_cli.training.state import load_ema_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("state", type=Path, help="training state path without suffix (…/prior/best)")
    parser.add_argument(
        "--init",
        type=Path,
        required=True,
        help="the model the run started from (architecture and the parts it did not train)",
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output path without suffix")
    parser.add_argument("--model-id", default=None)
    args = parser.parse_args()
    model = load_model(args.init)
    meta = json.loads(args.state.with_suffix(".json").read_text())
    model.adopt_chain(meta.get("diffusion") or {})  # a chain trained on a DDPM model's UNet
    if meta.get("stage") == "error" and model.error_head is None:  # an error head trained on the --init model
        model.add_error_head(int(meta.get("settings", {}).get("error_width", 32)))
    step = load_ema_weights(args.state, model)  # rssr train's states hold the whole model (frozen parts included)
    meta.pop("optimizer", None)
    meta.pop("sampler_rng", None)
    meta.pop("noise_rng", None)  # the RNG states resume a run; a card has no use for them
    training = {"exported_from": f"{args.state} (EMA weights at step {step})", "state": meta}
    path = save_model(model, args.out, training=training, model_id=args.model_id)
    print(f"wrote {path} (step {step})")


if __name__ == "__main__":
    main()
