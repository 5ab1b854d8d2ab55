"""The suite uses swift-ext's own pytest kit (:mod:`swift_ext.testing`: tiny models, ``run_swift``,
``register_plugin``), as a plugin author's suite would."""

import sys

pytest_plugins = ["swift_ext.testing"]


def pytest_configure(config):
    # installed third-party plugins stay out of in-process tests (subprocess tests opt in explicitly)
    sys._called_from_test = True
