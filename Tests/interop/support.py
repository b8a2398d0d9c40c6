"""Tool discovery shared by conftest and the test modules.

Rule: a missing tool (paho-mqtt, mosquitto_pub, mosquitto_sub, ...) skips the
tests that need it on a developer machine, but FAILS them when CI=true.
"""

import os
import shutil

import pytest

CI = os.environ.get("CI", "").strip().lower() == "true"


def missing(what, hint=""):
    msg = "%s is not available%s" % (what, (" (" + hint + ")") if hint else "")
    if CI:
        pytest.fail(msg + "; CI=true so this is a failure, not a skip", pytrace=False)
    pytest.skip(msg, allow_module_level=True)


def require_paho():
    """Import paho-mqtt >= 2 or skip/fail."""
    try:
        import paho.mqtt.client as client
    except ImportError:
        missing("paho-mqtt", "pip install 'paho-mqtt>=2'")
    major = int(paho_version().split(".")[0])
    if major < 2:
        missing("paho-mqtt >= 2.0 (found %s)" % paho_version(), "pip install -U paho-mqtt")
    return client


def paho_version():
    import paho.mqtt
    return getattr(paho.mqtt, "__version__", "0")


def require_tool(name, hint="apt-get install -y mosquitto-clients"):
    path = shutil.which(name)
    if not path:
        missing(name, hint)
    return path
