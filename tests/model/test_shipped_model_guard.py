"""The conftest guard: loading a shipped model fails a test that does not ask for it (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rssr_cli.backends import default_model_path
from rssr_cli.model.validation import read_safetensors_header

pytest_plugins = ["pytester"]


@pytest.mark.shipped_model  # the inner run's loads happen in this process too
def test_an_unmarked_test_that_loads_a_shipped_model_fails(pytester):
    suite_conftest = Path(__file__).parents[1] / "conftest.py"
    pytester.makeconftest(
        f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("suite_conftest", {str(suite_conftest)!r})
        suite = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(suite)
        _shipped_model_guard = suite._shipped_model_guard  # the suite's guard, as is
        """
    )
    pytester.makepyfile(
        f"""
        import pytest
        from rssr_cli.model.validation import read_safetensors_header

        def test_unmarked():
            read_safetensors_header({str(default_model_path())!r})

        @pytest.mark.shipped_model
        def test_marked():
            read_safetensors_header({str(default_model_path())!r})
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*loaded the shipped model(s) aerial.safetensors without @pytest.mark.shipped_model*"])


@pytest.mark.shipped_model
def test_a_marked_test_may_load_it():
    assert read_safetensors_header(default_model_path())
