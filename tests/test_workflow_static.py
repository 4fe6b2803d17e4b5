"""Static checks of the workflow: paths that a dry run would not notice, schema defaults, envs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from plateflow import features, illumination, qc, segmentation
from plateflow.qc import plate as qc_plate

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
    ("segmentation", segmentation), ("features", features)])
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


PACKAGE = REPO / "scripts" / "plateflow"
STAGES = ("sheets", "qc", "illumination", "segmentation", "features", "profiles", "report")


def _imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_stages_meet_only_through_the_core():
    """A stage imports the core and itself, never another stage; the core imports no stage."""
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "core", *STAGES}
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0]
        for name in _imports(path):
            assert not name.startswith("snakemake"), f"{path} imports {name}"
            if not name.startswith("plateflow."):
                continue
            target = name.split(".")[1]
            allowed = {"core"} if part == "core" else {"core", part}
            assert target in allowed, f"{path.relative_to(REPO)} imports {name}"


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_every_rule_passes_the_hash_of_its_code():
    """Editing a stage's code reruns its rules: each rule's params carry the code's hash."""
    for rule_file in RULE_FILES:
        for name, body in _rules(rule_file.read_text()):
            if name in ("generate_example_plate", "stage_model"):
                continue
            assert re.search(r"^        code=CODE\[\"\w+\"\],$", body, flags=re.MULTILINE), name


def test_code_hash_changes_with_the_code(tmp_path, monkeypatch):
    from plateflow.core import params

    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(params, "PACKAGE", tmp_path)
    params._folder_digest.cache_clear()
    before = params.code_hash(["stage"])
    (tmp_path / "stage" / "a.py").write_text("x = 2\n")
    params._folder_digest.cache_clear()
    assert params.code_hash(["stage"]) != before


def test_canonical_params_ignore_key_order_and_integer_spelling():
    from plateflow.core.params import canonical

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    a = {"qc": {"min_focus_score": 2, "noise_floor": 0.5}, "batching": {"wells_per_job": 12}}
    b = {"batching": {"wells_per_job": 12}, "qc": {"noise_floor": 0.5, "min_focus_score": 2.0}}
    assert repr(canonical(a, schema)) == repr(canonical(b, schema))
    assert canonical(a, schema)["batching"]["wells_per_job"] == 12
    assert isinstance(canonical(a, schema)["batching"]["wells_per_job"], int)
