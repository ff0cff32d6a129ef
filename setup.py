"""Packaging beyond pyproject.toml: the shipped models travel in the wheel.

models/ stays the repository's source of truth; the wheel carries it as rssr_cli/models/ (package-dir
mapping), where shipped_models.models_dir() finds it through importlib.resources: every model
(<name>.safetensors + its card <name>.json) and the guided sharpener (sharpen.safetensors + sharpen.md);
not models/wip/ (training state). An editable install finds the repository's models/ directly.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["rssr_cli*"]) + ["rssr_cli.models"],
    package_dir={"rssr_cli.models": "models"},
    package_data={"rssr_cli": ["py.typed"], "rssr_cli.models": ["*.safetensors", "*.json", "*.md"]},
)
