"""Static checks of the workflow: paths that a dry run would not notice, schema defaults, envs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from plateflow import illumination, qc, qc_plate, segmentation

REPO = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def _rules(text: str) -> list[tuple[str, str]]:
    """(name, body) of every rule or checkpoint in a rule file."""
    parts = re.split(r"^(?:rule|checkpoint) (\w+):\n", text, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2]))


def test_every_referenced_script_and_env_exists():
    referenced = 0
    for rule_file in RULE_FILES:
        for match in re.finditer(r'^\s+"(\.\./\.\./[^"]+)"', rule_file.read_text(), flags=re.MULTILINE):
            path = (rule_file.parent / match.group(1)).resolve()
            assert path.is_file(), f"{rule_file.name} names {match.group(1)}, which does not exist"
            referenced += 1
    assert referenced >= 18


def test_every_rule_has_log_conda_and_script():
    rules = [r for f in RULE_FILES for r in _rules(f.read_text())]
    assert len(rules) >= 10
    for name, body in rules:
        for directive in ("log:", "conda:", "script:"):
            assert directive in body, f"rule {name} has no {directive}"


def test_common_smk_has_no_rules():
    assert _rules((REPO / "workflow" / "rules" / "common.smk").read_text()) == []


def _schema_defaults(properties: dict) -> dict:
    out = {}
    for key, spec in properties.items():
        if "properties" in spec and spec.get("type") == "object":
            out[key] = _schema_defaults(spec["properties"])
        elif "default" in spec:
            out[key] = spec["default"]
    return out


@pytest.mark.parametrize("section, module", [
    ("qc", qc), ("qc_plate", qc_plate), ("illumination", illumination),
    ("segmentation", segmentation)])
def test_schema_defaults_equal_the_module_defaults(section, module):
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert _schema_defaults(schema["properties"][section]["properties"]) == module.DEFAULT_PARAMS


def test_default_config_validates():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert config["qc"]["min_focus_score"] == qc.DEFAULT_PARAMS["min_focus_score"]
    assert config["segmentation"]["classical"]["smoothing_sigma"] == 1.0
    assert config["illumination"]["max_sites"] == 200


def test_config_with_a_typo_fails_naming_the_key():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["segmentation"]["nuclei_chanel"] = "DNA"
    with pytest.raises(WorkflowError, match="nuclei_chanel"):
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
