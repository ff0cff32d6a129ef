"""Packaging beyond pyproject.toml: the default model travels in the wheel.

models/ stays the repository's source of truth; the wheel carries it as rssr_cli/models/ (package-dir
mapping), where backends.bundled_model_paths() finds it through importlib.resources. An editable install
finds the repository's models/ directly.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["rssr_cli*"]) + ["rssr_cli.models"],
    package_dir={"rssr_cli.models": "models"},
    package_data={"rssr_cli": ["py.typed"], "rssr_cli.models": ["default.safetensors", "default.json", "sharpen.safetensors", "sharpen.md"]},
)
