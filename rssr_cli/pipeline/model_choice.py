"""Which model a scene runs, decided once per scene before its backend is built: --model, else $RSSR_MODEL, else the
input's rule (model_rule.RULE). The choice travels in the settings (UpscaleSettings.model_choice), so the output's tags
name the model and why (RSSR_MODEL_NAME, RSSR_MODEL_CHOICE) and a batch can tell a changed default from another request."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional

from rssr_cli.backends import MODEL_ENV, backend_names, default_model_path, get_backend
from rssr_cli.model.shipped_models import model_name, shipped_models
from rssr_cli.pipeline.model_rule import (
    CHOSEN_BY_ENV,
    CHOSEN_BY_MODEL,
    CHOSEN_BY_RULE,
    InputFacts,
    ModelChoice,
    choose_default_model,
    input_facts,
)
from rssr_cli.pipeline.settings import DEFAULT_METHOD, UpscaleSettings, run_method


def uses_model_rule(settings: UpscaleSettings) -> bool:
    """The diffusion method with no model named (--model) and none set ($RSSR_MODEL): the rule picks per input."""
    return run_method(settings) == DEFAULT_METHOD and settings.model.model is None and not os.environ.get(MODEL_ENV)


def with_scene_model(src: str | Path, settings: UpscaleSettings) -> UpscaleSettings:
    """`settings` with the model `src` runs and why (settings.model_choice); unchanged for classical methods and when
    already chosen. The rule opens the input's header; with no shipped model at all the model stays unset, and the
    backend then fails with the line that names the ways out."""
    if settings.model_choice is not None or run_method(settings) != DEFAULT_METHOD:
        return settings
    if settings.model.model is not None:
        given = settings.model.model
        return replace(
            settings, model_choice=ModelChoice(model_name(given), f"--model {os.fspath(given)}", CHOSEN_BY_MODEL)
        )
    env = os.environ.get(MODEL_ENV)
    if env:
        return replace(settings, model_choice=ModelChoice(model_name(env), f"${MODEL_ENV}={env}", CHOSEN_BY_ENV))
    choice = choose_default_model(input_facts(src), shipped_models())
    if choice.name is None:
        return settings
    return replace(settings, model=replace(settings.model, model=choice.name), model_choice=choice)


def input_model_choice(facts: InputFacts) -> ModelChoice:
    """What a run without --model uses for an input with these facts ($RSSR_MODEL, else the rule), for `rssr info`."""
    rule = choose_default_model(facts, shipped_models())
    env = os.environ.get(MODEL_ENV)
    if env:
        return ModelChoice(
            model_name(env),
            f"${MODEL_ENV}={env} overrides the rule (which picks {rule.name}: {rule.reason})",
            CHOSEN_BY_ENV,
        )
    return rule


def check_model_found(settings: UpscaleSettings) -> None:
    """Before a batch's first scene: the method exists, and a rule-picked model has a shipped model to pick (else the
    run stops at once with the no-model line, not once per scene)."""
    if not uses_model_rule(settings):
        return
    if DEFAULT_METHOD not in backend_names():
        get_backend(DEFAULT_METHOD)  # raises the usage error that says torch is missing
    if not shipped_models():
        default_model_path()  # raises CheckpointError naming --model, RSSR_MODEL and --method bicubic


MODEL_TAGS = (
    "RSSR_METHOD",
    "RSSR_MODEL",
    "RSSR_MODEL_SHA256",
    "RSSR_STEPS",
    "RSSR_STRENGTH",
)  # what a card's model decides


def model_change(tags: Mapping[str, str], wanted: Mapping[str, str], choice: Optional[ModelChoice]) -> Optional[str]:
    """'model changed: OLD -> NEW' when an existing output differs from this request only by the model, and both were
    picked by the rule: the default for this input changed (a new shipped model), so a batch redoes the scene once.
    An output made before outputs recorded their choice counts as picked by default when its model was a shipped one."""
    if choice is None or choice.by != CHOSEN_BY_RULE:
        return None
    differing = {key for key, value in wanted.items() if tags.get(key) != value}
    if "RSSR_MODEL_SHA256" not in differing or not differing <= set(MODEL_TAGS):
        return None
    if not tags.get("RSSR_METHOD", "").startswith("diffusion"):
        return None
    old_choice = tags.get("RSSR_MODEL_CHOICE")
    if old_choice is not None:
        by_default = old_choice.startswith(CHOSEN_BY_RULE)
    else:
        by_default = tags.get("RSSR_MODEL_SHA256") in {m.sha256 for m in shipped_models().values()}
    if not by_default:
        return None
    return f"model changed: {tags.get('RSSR_MODEL', '?')} -> {wanted.get('RSSR_MODEL', '?')}"
