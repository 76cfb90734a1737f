"""The documentation cannot rot: the site builds with no warnings, the settings reference lists
every setting, and the landing page's Python example runs."""
import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_the_settings_reference_lists_every_setting_and_preset():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "docs" / "hooks" / "reference.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    from textlstm.config import SECTIONS, preset_names

    text = ref.settings_reference()
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"| `{section}.{f.name}` |" in text
    assert all(f"| `{name}` |" in ref.presets_reference() for name in preset_names())
    assert "<!-- settings-reference -->" in (ROOT / "docs" / "settings.md").read_text()


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_landing_pages_python_example_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no Python example"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, page, "exec"), scope)
    assert scope["clf"].predict(["what a wonderful story"])[0] in {"pos", "neg"}
    assert (tmp_path / "model" / "manifest.json").is_file()


def test_the_readme_and_the_home_page_agree():
    readme, home = (ROOT / "README.md").read_text(), (ROOT / "docs" / "index.md").read_text()
    assert python_blocks(ROOT / "README.md") == python_blocks(ROOT / "docs" / "index.md")
    assert readme.split("## How it compares")[1].split("\n\n")[2] == home.split("## How it compares")[1].split("\n\n")[2]


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_site_builds_offline_with_no_warnings(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    res = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env={"NO_MKDOCS_2_WARNING": "1",
                                                                           "PATH": str(Path(sys.executable).parent)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "site" / "settings.html").is_file()
    assert "train.adversarial" in (tmp_path / "site" / "settings.html").read_text()
    assert "TextClassifier" in (tmp_path / "site" / "api.html").read_text()


def command_lines() -> list[tuple[str, str]]:
    """(page, command line) of every `textlstm …` line in the docs' and README's code blocks."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash|text|console)?\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
            for line in block.splitlines():
                line = line.removeprefix("$ ").strip()
                if line.startswith("textlstm "):
                    found.append((page.name, line.split("  #")[0].split(" # ")[0]))
    return found


def test_every_documented_command_and_option_exists():
    """A renamed command or option fails here, not in a user's shell."""
    from typer.testing import CliRunner

    from textlstm.cli import app

    runner, helps = CliRunner(), {}
    lines = command_lines()
    assert len(lines) > 30
    for page, line in lines:
        words = line.split()[1:]
        path = [w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]+", w)]
        if len(path) == 2 and path[0] not in ("corpora", "vectors"):
            path = path[:1]  # the second word is an argument (a file or model name)
        key = tuple(path)
        if key not in helps:
            res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
            assert res.exit_code == 0, f"{page}: `{line}`: no command {' '.join(path)!r}"
            helps[key] = res.output
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
            assert option in helps[key], f"{page}: `{line}`: {' '.join(path)} has no option {option}"
