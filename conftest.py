"""The plugin arrives through its pytest11 entry point, not from here: this only says so when it is missing."""

import importlib.util

import pytest

if importlib.util.find_spec("saveexport") is None:
    raise pytest.UsageError(
        "the saveexport plugin is not installed; run 'pip install -e .' (or 'tox -e tests') first")
