"""The conda envs, checked statically (conda cannot run here): every rule names one, every file
parses, every pin is exact (conda packages and the `pip:` section alike), and every pin equals
what the test environment installed."""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+) ==(?P<version>[0-9][0-9A-Za-z.\-+]*)$")
#: a pin of an env's `pip:` section (pip's syntax)
PIP_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)==(?P<version>[0-9][0-9A-Za-z.\-+]*)$")
#: the `cellpose` install extra: skipped with a reason where it is not installed
EXTRA = {"cellpose", "torch", "torchvision"}
#: conda package name -> installed distribution name, where they differ
DIST_NAMES = {"snakemake-minimal": "snakemake"}


def _installed(name: str) -> str | None:
    if name == "python":
        return platform.python_version()
    try:
        return metadata.version(DIST_NAMES.get(name, name))
    except metadata.PackageNotFoundError:
        return None


def _pins(env: dict, env_name: str) -> list[tuple[str, str]]:
    """(name, version) of every pin of an env, its `pip:` section included; each must be exact."""
    pins = []
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            assert set(dependency) == {"pip"}, f"{env_name}: unexpected entry {dependency!r}"
            for requirement in dependency["pip"]:
                match = PIP_PIN.match(requirement)
                assert match, f"{env_name}: pip '{requirement}' is not an exact pin (name==version)"
                pins.append(match.group("name", "version"))
            continue
        assert isinstance(dependency, str), f"{env_name}: unexpected entry {dependency!r}"
        match = PIN.match(dependency)
        assert match, f"{env_name}: '{dependency}' is not an exact pin (name ==version)"
        pins.append(match.group("name", "version"))
    return pins


def test_there_is_one_env_per_kind_of_step():
    assert {p.stem for p in ENV_FILES} == {"io", "segment", "features", "aggregate"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_parses_and_pins_exactly_what_is_installed(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    pins = _pins(env, env_file.name)
    if any(isinstance(d, dict) for d in env["dependencies"]):
        assert "pip" in dict(pins), f"{env_file.name}: a pip section needs pip pinned"
    missing = []
    for name, version in pins:
        installed = _installed(name)
        if installed is None and name in EXTRA:
            missing.append(name)
            continue
        assert installed == version, (
            f"{env_file.name} pins {name} {version}, the test environment has {installed}")
    assert {"python", "snakemake-minimal", "numpy"} <= set(dict(pins))
    if missing:
        pytest.skip(f"{env_file.name}: {', '.join(missing)} not installed here, pins not "
                    "compared (pip install -e '.[cellpose]')")


def test_every_rule_names_an_existing_env():
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rule_file.read_text()
        rules = re.findall(r"^(?:rule|checkpoint) \w+:", text, flags=re.MULTILINE)
        envs = re.findall(r'^    conda:\n        "([^"]+)"', text, flags=re.MULTILINE)
        assert len(envs) == len(rules), f"{rule_file.name}: a rule lacks conda:"
        for env in envs:
            assert (rule_file.parent / env).resolve() in {p.resolve() for p in ENV_FILES}


def test_pyproject_pins_agree_with_the_envs():
    text = (REPO / "pyproject.toml").read_text()
    pinned = dict(re.findall(r'"([A-Za-z0-9_.\-]+)==([^"]+)"', text))
    assert EXTRA <= set(pinned), "pyproject.toml: the cellpose extra is not pinned"
    for env_file in ENV_FILES:
        for name, version in _pins(yaml.safe_load(env_file.read_text()), env_file.name):
            name = DIST_NAMES.get(name, name)
            if name in pinned:
                assert pinned[name] == version, f"{name}: pyproject {pinned[name]}, {env_file.name} {version}"
