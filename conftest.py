"""Root conftest: enables the streamconform pytest plugin when running from a source checkout.

When the distribution is installed, pytest already loads the plugin through its `pytest11` entry point; loading it
a second time under another name would be an error, so it is named here only when that entry point is absent.
"""

from importlib.metadata import entry_points

if not any(ep.value == "harness.pytest.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["harness.pytest.plugin"]
