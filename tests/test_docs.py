"""Docstring examples run and print exactly what they claim; every public piece has a page."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import io
import pkgutil
import re
from pathlib import Path

import pytest

import adv_envs
import adv_wrappers
import adv_wrappers.train
from adv_wrappers.registry import THREAT_MODELS

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    {f"adv_wrappers.{m.name}" for m in pkgutil.iter_modules(adv_wrappers.__path__)}
    | {f"adv_envs.{m.name}" for m in pkgutil.iter_modules(adv_envs.__path__)}
    | {f"adv_wrappers.train.{m.name}" for m in pkgutil.iter_modules(adv_wrappers.train.__path__)}
)
# modules whose docstrings must carry a runnable example
MUST_HAVE_EXAMPLES = {
    "adv_wrappers.k_corruption",
    "adv_wrappers.byzantine",
    "adv_wrappers.partial_control",
    "adv_wrappers.state_perturbation",
    "adv_wrappers.freeze",
    "adv_envs.echo",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "adv_wrappers.attacks":
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} has no docstring example"


def _env_pages_generator():
    """``docs/gen_env_pages.py``, a developer script outside the installed package."""
    spec = importlib.util.spec_from_file_location(
        "gen_env_pages", ROOT / "docs" / "gen_env_pages.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("info", adv_envs.ENVS, ids=lambda info: info.id)
def test_env_docs_page_is_the_docstring(info):
    path = ROOT / "docs" / "envs" / f"{info.module}.md"
    assert path.is_file(), f"run python docs/gen_env_pages.py ({path} is missing)"
    assert path.read_text() == _env_pages_generator().page(info), (
        f"{path} is stale: run python docs/gen_env_pages.py"
    )
    for section in ("Version History", "Arguments"):
        assert section in path.read_text(), f"{info.id}: its docstring has no {section!r} section"


def test_env_docs_index_is_current():
    """The index table (IDs, papers, spaces; steps/s from the committed JSON)."""
    path = ROOT / "docs" / "envs" / "index.md"
    assert path.read_text() == _env_pages_generator().index(ROOT / "docs"), (
        f"{path} is stale: run python docs/gen_env_pages.py"
    )


def test_env_docs_generator_is_not_installed():
    assert importlib.util.find_spec("adv_envs.make_docs") is None


@pytest.mark.parametrize("tm_name", list(THREAT_MODELS))
def test_every_threat_model_has_a_docs_page(tm_name):
    page = ROOT / "docs" / f"{tm_name.removesuffix('_v0')}.md"
    assert page.is_file(), f"{tm_name} has no docs page {page}"
    assert tm_name in page.read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(
        line
        for line in readme.splitlines()
        if line.startswith("python3 -m venv") and "pytest" in line
    )
    assert command in ci


def doc_examples():
    """Every ```python block of docs/*.md followed by "prints" and a ```text block."""
    pattern = re.compile(
        r"```python\n((?:(?!```).)*?)```\s*\n+prints:?\s*\n+```text\n((?:(?!```).)*?)```", re.S
    )
    for page in sorted((ROOT / "docs").glob("*.md")):
        for i, match in enumerate(pattern.finditer(page.read_text())):
            yield pytest.param(match.group(1), match.group(2), id=f"{page.stem}-{i}")


@pytest.mark.parametrize("code,expected", list(doc_examples()))
def test_docs_examples_print_what_the_page_says(code, expected):
    if "torch" in code:
        pytest.importorskip("torch")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
    assert out.getvalue().strip() == expected.strip()


def test_docs_examples_were_found():
    assert len(list(doc_examples())) >= 8


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    for code in blocks:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "<README example>", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("script", sorted((ROOT / "baselines").glob("*.py")), ids=lambda p: p.name)
def test_every_baseline_names_its_docs_page(script):
    """CleanRL's first line: where the docs are; the page must exist and mention the file."""
    first = script.read_text().splitlines()[0]
    match = re.fullmatch(r"# docs and experiment results can be found at (docs/\S+\.md)", first)
    assert match, f"{script.name}: first line {first!r}"
    page = ROOT / match.group(1)
    assert page.is_file() and script.name in page.read_text(), page
