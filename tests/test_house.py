"""Where things live: one stage module per rules file, one stage function per rule, and imports
that run only downwards (the library never imports the stages or the plots)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "flowsim"
RULES = ROOT / "workflow" / "rules"
#: The library packages: models, statistics, data. They know nothing of jobs or figures.
LIBRARY = ("flows", "metrics", "analysis", "data")


def _rules_with_scripts() -> list[tuple[str, str, str]]:
    """(stage, rule, script) for every rule of workflow/rules/<stage>.smk that runs a script."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"\n(?=\s*rule \w+:)", smk.read_text()):
            rule = re.search(r"rule (\w+):", block)
            script = re.search(r'"\.\./scripts/(\w+)\.py"', block)
            if rule and script:
                found.append((smk.stem, rule.group(1), script.group(1)))
    return found


def _imports(path: Path) -> list[str]:
    """Every module a file imports (absolute names; relative imports resolved in the package)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module or "")
    return names


def test_every_rule_with_a_script_has_a_stage_module():
    stages = {stage for stage, _, _ in _rules_with_scripts()}
    assert stages == {"data", "flows", "evaluate", "classifier", "analysis", "worth", "summary"}
    for stage in stages:
        assert (PACKAGE / "stages" / f"{stage}.py").is_file()


@pytest.mark.parametrize(("stage", "rule", "script"), _rules_with_scripts(), ids=lambda v: str(v))
def test_each_script_calls_the_one_stage_function_named_after_its_rule(stage, rule, script):
    tree = ast.parse((ROOT / "workflow" / "scripts" / f"{script}.py").read_text())
    stage_imports = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flowsim.stages")
        for alias in node.names
        if node.module == f"flowsim.stages.{stage}"
    }
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in stage_imports
        and not stage_imports[node.func.id][0].isupper()  # output classes are built, not called as stages
    }  # fmt: skip
    assert calls == {rule}, f"workflow/scripts/{script}.py calls {sorted(calls)} of flowsim.stages.{stage}"
    imported = (n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    other = {m for m in imported if m and m.startswith("flowsim.")}
    assert other <= {"flowsim.logs", "flowsim.stages", f"flowsim.stages.{stage}", "flowsim.runs", "flowsim.studies"}


@pytest.mark.parametrize("package", [*LIBRARY, "plots"])
def test_the_library_and_the_plots_never_import_the_stages(package):
    for path in sorted((PACKAGE / package).rglob("*.py")):
        bad = [name for name in _imports(path) if name.startswith("flowsim.stages")]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("package", LIBRARY)
def test_the_library_never_imports_the_plots(package):
    for path in sorted((PACKAGE / package).rglob("*.py")):
        bad = [name for name in _imports(path) if name.startswith("flowsim.plots")]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_docstrings_use_one_convention():
    """``Arguments:``/``Returns:`` sections (as zuko's), never Google's ``Args:``, numpydoc's
    underlined headings or reST's ``:param:`` fields."""
    others = re.compile(r"^\s*(Args:|Parameters\n\s*-{3,}|Returns\n\s*-{3,}|:param \w+:|:returns?:)", re.MULTILINE)
    for path in sorted(PACKAGE.rglob("*.py")):
        found = others.findall(path.read_text())
        assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_no_module_imports_a_private_name_of_another():
    """What one module shares with another is public: an underscore name stays in its file."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        private = [
            f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flowsim")
            for alias in node.names
            if alias.name.startswith("_")
        ]
        assert not private, f"{path.relative_to(ROOT)} imports {private}"
