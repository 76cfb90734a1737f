"""Every shell example of the documentation runs, and every output it shows is what the command
prints today (numbers aside): `tests/docrun.py` runs each page's blocks in order in a sandbox."""
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from docrun import ROOT, blocks, make_sandbox, model_for, run_page, train_model

PAGES = sorted(p.name for p in (ROOT / "docs").glob("*.md")
               if any(b.lang == "bash" or b.is_transcript for b in blocks(p.read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every page's run, two at a time (each is a chain of processes: the two cores share them)."""
    model = train_model(tmp_path_factory.mktemp("docmodel") / "model")

    def run(page):
        path = ROOT / "docs" / page
        return run_page(path, make_sandbox(tmp_path_factory.mktemp(page.removesuffix(".md")), model_for(path, model)))

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(PAGES, pool.map(run, PAGES)))


def test_the_pages_with_examples_are_the_ones_expected():
    assert {"cli.md", "evaluating.md", "predicting.md", "serving.md", "training.md", "tuning.md", "compress.md",
            "multilabel.md", "vectors.md", "distributed.md", "index.md"} <= set(PAGES)


def test_the_readme_shows_the_home_pages_examples():
    """README.md is not run on its own: its blocks are the home page's."""
    readme = [b.body for b in blocks((ROOT / "README.md").read_text(encoding="utf-8"))]
    assert readme == [b.body for b in blocks((ROOT / "docs" / "index.md").read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_examples_run_and_print_what_it_shows(page, runs):
    run = runs[page]
    if shutil.which("curl") is None and "curl " in (ROOT / "docs" / page).read_text(encoding="utf-8"):
        pytest.skip("the page's examples call curl, which is not installed")
    assert not run.problems, "\n\n".join(run.problems) + "\n(python tests/docrun.py --update docs/" + page + \
        " rewrites the page's transcripts from a fresh run)"
    for reason in run.skipped:  # a block left out says why, and only where it cannot run here
        assert re.search(r"machines|virtualenv|minutes", reason), reason


def test_a_transcript_that_no_longer_matches_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```text\n$ echo hello 42\nhello 7\n$ echo a; echo b; echo c\na\n…\n```\n\n"
                    "```text\n$ echo goodbye\nhello\n```\n\n```bash\ntrue\n```\n\n```yaml\nx: 1\n```\n")
    (tmp_path / "box").mkdir()
    run = run_page(page, tmp_path / "box")
    assert len(run.problems) == 2, run.problems
    assert "`$ echo goodbye` printed something else" in run.problems[1] and "yaml" in run.problems[0]
    assert "$ echo goodbye\ngoodbye" in run.updated_text and "hello 42\nhello 42" in run.updated_text
