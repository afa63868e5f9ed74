"""Install the official lightning-sdk into the test venv: a test-only dependency, never a runtime one.

It is installed after the package so that its own pins cannot change what the provider is tested with.
"""

import importlib.util
import subprocess
import sys

if importlib.util.find_spec("lightning_sdk") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "lightning-sdk"], check=True)
