"""The conda envs, checked statically (conda cannot run here): every rule names one, every file
parses, every pin is exact, and every pin equals what the test environment installed."""

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
#: conda package name -> installed distribution name, where they differ
DIST_NAMES = {"snakemake-minimal": "snakemake"}


def _installed(name: str) -> str:
    if name == "python":
        return platform.python_version()
    return metadata.version(DIST_NAMES.get(name, name))


def test_there_is_one_env_per_kind_of_step():
    assert {p.stem for p in ENV_FILES} == {"io", "segment", "features", "aggregate"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_parses_and_pins_exactly_what_is_installed(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    names = []
    for dependency in env["dependencies"]:
        assert isinstance(dependency, str), f"{env_file.name}: unexpected entry {dependency!r}"
        match = PIN.match(dependency)
        assert match, f"{env_file.name}: '{dependency}' is not an exact pin (name ==version)"
        name, version = match["name"], match["version"]
        assert _installed(name) == version, (
            f"{env_file.name} pins {name} {version}, the test environment has {_installed(name)}")
        names.append(name)
    assert {"python", "snakemake-minimal", "numpy"} <= set(names)


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
    for env_file in ENV_FILES:
        for dependency in yaml.safe_load(env_file.read_text())["dependencies"]:
            name, version = PIN.match(dependency).group("name", "version")
            name = DIST_NAMES.get(name, name)
            if name in pinned:
                assert pinned[name] == version, f"{name}: pyproject {pinned[name]}, {env_file.name} {version}"
