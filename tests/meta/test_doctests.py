"""Every docstring example in the package runs and prints what it shows (rewards' examples above all)."""

import doctest
import importlib
import pkgutil

import pytest

import swift_ext

SKIP = ("swift_ext._swift_plugin", "swift_ext.__main__", "swift_ext.cpu_compat.site")


def modules():
    for info in pkgutil.walk_packages(swift_ext.__path__, "swift_ext."):
        if not info.name.startswith(SKIP):
            yield info.name


@pytest.mark.parametrize("name", sorted(modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"
