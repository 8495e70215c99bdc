"""Snakemake's linter, and conda envs that hold everything their rules' scripts import."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflow.runner import ROOT, snakemake

RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
# import name -> conda-forge package name, where they differ
CONDA_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "torch": "pytorch"}


def test_snakemake_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output


def _rules() -> list[tuple[str, Path, Path | None]]:
    """(rule name, conda env file, script file) for every rule of workflow/rules/*.smk."""
    rules = []
    for smk in RULE_FILES:
        text = smk.read_text()
        for block in re.split(r"\n\s*(?=rule \w+:)", text)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            block = re.split(r"\n\s*rule \w+:", block)[0]
            conda = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            assert conda, f"rule {name} in {smk.name} declares no conda env"
            rules.append(
                (
                    name,
                    (smk.parent / conda.group(1)).resolve(),
                    (smk.parent / script.group(1)).resolve() if script else None,
                )
            )
    return rules


def _imports(path: Path) -> set[str]:
    """Top-level names of all modules a Python file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _third_party_imports(script: Path) -> set[str]:
    """Third-party packages a script needs, following its imports through the flowsim package."""
    needed, seen, todo = set(), set(), [script]
    while todo:
        for module in _imports(todo.pop()):
            top = module.split(".")[0]
            if top == "flowsim":
                if module in seen:
                    continue
                seen.add(module)
                spec = importlib.util.find_spec(module)
                if spec and spec.origin and spec.origin.endswith(".py"):
                    todo.append(Path(spec.origin))
            elif top not in sys.stdlib_module_names:
                needed.add(top)
    return needed


def _env_packages(env: Path) -> set[str]:
    spec = yaml.safe_load(env.read_text())
    return {re.split(r"[ =<>]", d)[0] for d in spec["dependencies"] if isinstance(d, str)}


@pytest.mark.parametrize("env", ENV_FILES, ids=lambda p: p.name)
def test_env_files_parse_and_pin_major_minor(env):
    spec = yaml.safe_load(env.read_text())
    assert "conda-forge" in spec["channels"]
    for dep in spec["dependencies"]:
        assert isinstance(dep, str), f"{env.name}: unexpected entry {dep!r}"
        assert re.fullmatch(r"[\w\-]+ =\d+\.\d+", dep), f"{env.name}: pin '{dep}' as 'name =X.Y'"
    deploy = env.with_name(env.stem + ".post-deploy.sh")
    assert "pip install" in deploy.read_text(), f"{deploy.name} must install flowsim"


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r[0])
def test_rule_env_lists_what_its_script_imports(rule):
    name, env, script = rule
    assert env.exists(), f"rule {name}: env file {env} is missing"
    if script is None:
        return
    missing = {CONDA_NAMES.get(m, m) for m in _third_party_imports(script)} - _env_packages(env)
    assert not missing, f"rule {name}: {env.name} lacks {sorted(missing)} imported by {script.name}"
