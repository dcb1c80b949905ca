"""The dependency between the two installed packages goes one way: ``adv_envs`` (the bundled
environments) is the lower layer and never imports ``adv_wrappers`` (the threat models);
``adv_wrappers`` imports ``adv_envs`` only to register the envs, and re-exports the error
classes the envs raise.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import adv_envs
import adv_wrappers
import adv_wrappers.errors
from adv_envs import _errors

# Every module of adv_envs (the env modules of adv_envs.ENVS, their exact solutions, echo,
# the private helpers), found on disk so that a new module is checked without editing this.
MODULES = ["adv_envs"] + sorted(
    f"adv_envs.{m.name}" for m in pkgutil.iter_modules(adv_envs.__path__)
)

# Imports each module in turn in a fresh interpreter; reports the first that brought in
# adv_wrappers, and the modules skipped because an optional extra is not installed.
SCRIPT = """
import importlib, json, sys
report = {"imported": [], "skipped": {}, "culprit": None}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if (exc.name or "").startswith("adv_wrappers"):
            raise
        report["skipped"][name] = str(exc)
        continue
    report["imported"].append(name)
    if any(m == "adv_wrappers" or m.startswith("adv_wrappers.") for m in sys.modules):
        report["culprit"] = name
        break
print(json.dumps(report))
"""


def test_adv_envs_never_imports_adv_wrappers():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(MODULES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["culprit"] is None, f"importing {report['culprit']} imported adv_wrappers"
    # the check saw the env modules, not just a list of skips
    env_modules = {f"adv_envs.{info.module}" for info in adv_envs.ENVS}
    assert "adv_envs.xnor_xor" in report["imported"]
    assert env_modules <= set(report["imported"]) | set(report["skipped"])
    assert len(report["imported"]) == len(MODULES) - len(report["skipped"])


def test_the_xnor_xor_module_alone():
    code = "import sys, adv_envs.xnor_xor; print(sorted(m for m in sys.modules if m.split('.')[0] == 'adv_wrappers'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_errors_are_the_same_classes_on_both_layers():
    for name in (
        "AdvWrappersError",
        "InvalidArgumentError",
        "InvalidActionError",
        "MissingActionError",
    ):
        cls = getattr(_errors, name)
        assert getattr(adv_wrappers.errors, name) is cls
        assert getattr(adv_wrappers, name) is cls
    # the hierarchy built on them in adv_wrappers is intact
    assert issubclass(adv_wrappers.UnknownAgentError, _errors.InvalidArgumentError)
    assert issubclass(adv_wrappers.EnvKindError, _errors.AdvWrappersError)
    assert issubclass(_errors.InvalidArgumentError, ValueError)
    assert issubclass(_errors.MissingActionError, KeyError)


def test_an_env_error_is_caught_as_the_wrappers_error():
    from adv_envs import xnor_xor

    try:
        xnor_xor.parallel_env(max_cycles=0)
    except adv_wrappers.errors.InvalidArgumentError as exc:
        assert "max_cycles" in str(exc)
    else:
        raise AssertionError("max_cycles=0 was accepted")
