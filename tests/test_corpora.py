"""Corpus recipes run offline on tiny archives with the real layouts; plus the bundled corpus."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import shutil
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest

from textlstm.data import corpora
from textlstm.data.corpora import DEFAULT_CORPUS, RECIPES, Recipe, RemoteFile, download, prepare
from textlstm.errors import DataError

IMDB_REVIEWS = [  # (member, review): archive order is output order
    ("aclImdb/train/pos/0_9.txt", "A joy from start to finish.<br /><br />Go see it."),
    ("aclImdb/train/pos/1_8.txt", 'Funny, "warm" and clever, with a café scene I loved.'),
    ("aclImdb/train/neg/0_2.txt", "Dull.\nTwo lines, both bad."),
    ("aclImdb/train/neg/1_1.txt", "I want my money back"),
    ("aclImdb/train/unsup/0_0.txt", "Unlabelled reviews are not written."),
    ("aclImdb/test/pos/0_10.txt", "Wonderful acting, lovely score."),
    ("aclImdb/test/neg/0_3.txt", "The plot, such as it is, makes no sense."),
    ("aclImdb/test/pos/1_7.txt", "Better than I expected."),
    ("aclImdb/test/neg/1_4.txt", "Too long by an hour."),
]
SST2_TRAIN = b"sentence\tlabel\nhide new secretions \t0\nthe greatest musicians \t1\n"
SST2_DEV = b"sentence\tlabel\nit 's a charming journey . \t1\nunflinchingly bleak \t0\n"
TREC_TRAIN = (  # a blank line, and a latin-1 character, as in the real files
    "DESC:manner How did serfdom develop in and then leave Russia ?\n"
    "ENTY:cremat What films featured the character Popeye Doyle ?\n\n"
    "HUM:ind Who was the café owner in Casablanca ?\n"
)
TREC_TEST = "NUM:date When was Ozzy Osbourne born ?\r\nLOC:other Where is Belize located ?\r\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_tar(path: Path, members: list[tuple[str, str]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in [("aclImdb/README", "readme"), *members]:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """Local stand-ins for every download, keyed by file name."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "train_5500.label").write_bytes(TREC_TRAIN.encode("latin-1"))
    (src / "TREC_10.label").write_bytes(TREC_TEST.encode("latin-1"))
    return {
        "aclImdb_v1.tar.gz": make_tar(src / "aclImdb_v1.tar.gz", IMDB_REVIEWS),
        "SST-2.zip": make_zip(src / "SST-2.zip", {
            "SST-2/train.tsv": SST2_TRAIN, "SST-2/dev.tsv": SST2_DEV,
            "SST-2/test.tsv": b"index\tsentence\n0\tuncharted waters\n"}),
        "train_5500.label": src / "train_5500.label",
        "TREC_10.label": src / "TREC_10.label",
    }


class LocalCopy:
    """A `fetch` that copies the local file named like the URL's last part; counts calls."""

    def __init__(self, files: dict[str, Path]):
        self.files, self.calls = files, []

    def __call__(self, url: str, dest: Path) -> None:
        self.calls.append(url)
        shutil.copyfile(self.files[url.rsplit("/", 1)[-1]], dest)


def pin_to(monkeypatch, name: str, files: dict[str, Path]) -> None:
    """Swap recipe `name`'s checksums for those of the local stand-ins (same URLs and names)."""
    recipe = RECIPES[name]
    pinned = tuple(dataclasses.replace(f, sha256=sha256(files[f.filename])) for f in recipe.files)
    monkeypatch.setitem(RECIPES, name, dataclasses.replace(recipe, files=pinned))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part")


def test_imdb_reads_reviews_from_the_tar_into_two_csv_files(tmp_path, sources, monkeypatch):
    pin_to(monkeypatch, "imdb", sources)
    out = tmp_path / "imdb"
    paths = download("imdb", out, fetch=LocalCopy(sources))
    assert paths == [out / "train.csv", out / "test.csv"]
    for split, path in zip(("train", "test"), paths):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        expected = [[text, "positive" if "/pos/" in member else "negative"]
                    for member, text in IMDB_REVIEWS if member.startswith(f"aclImdb/{split}/")
                    and "/unsup/" not in member]
        assert rows == [["review", "sentiment"], *expected]
    assert (out / "downloads" / "aclImdb_v1.tar.gz").is_file()
    assert leftovers(out) == []


def test_sst2_copies_train_and_dev_byte_for_byte(tmp_path, sources, monkeypatch):
    pin_to(monkeypatch, "sst2", sources)
    paths = download("sst2", tmp_path / "sst2", fetch=LocalCopy(sources))
    assert [p.name for p in paths] == ["train.tsv", "dev.tsv"]
    assert paths[0].read_bytes() == SST2_TRAIN and paths[1].read_bytes() == SST2_DEV
    assert not (tmp_path / "sst2" / "test.tsv").exists()


def test_trec_writes_jsonl_with_coarse_and_fine_labels(tmp_path, sources, monkeypatch):
    pin_to(monkeypatch, "trec", sources)
    fetch = LocalCopy(sources)
    train, test = download("trec", tmp_path / "trec", fetch=fetch)
    assert fetch.calls == [f.url for f in RECIPES["trec"].files]
    records = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines()]
    assert records == [
        {"text": "How did serfdom develop in and then leave Russia ?",
         "label": "DESC", "fine": "DESC:manner"},
        {"text": "What films featured the character Popeye Doyle ?",
         "label": "ENTY", "fine": "ENTY:cremat"},
        {"text": "Who was the café owner in Casablanca ?", "label": "HUM", "fine": "HUM:ind"},
    ]
    assert [json.loads(line)["fine"] for line in test.read_text().splitlines()] == ["NUM:date", "LOC:other"]


def test_a_second_download_reuses_verified_files_and_replaces_corrupt_ones(tmp_path, sources, monkeypatch):
    pin_to(monkeypatch, "trec", sources)
    fetch = LocalCopy(sources)
    download("trec", tmp_path, fetch=fetch)
    download("trec", tmp_path, fetch=fetch)
    assert len(fetch.calls) == 2  # nothing fetched the second time
    (tmp_path / "downloads" / "TREC_10.label").write_bytes(b"truncated")
    download("trec", tmp_path, fetch=fetch)
    assert fetch.calls[2:] == [RECIPES["trec"].files[1].url]
    assert sha256(tmp_path / "downloads" / "TREC_10.label") == sha256(sources["TREC_10.label"])


def test_checksum_mismatch_names_file_expected_and_actual(tmp_path, sources, monkeypatch):
    wrong = "0" * 64
    bad = RemoteFile("https://example.invalid/SST-2.zip", "SST-2.zip", wrong)
    monkeypatch.setitem(RECIPES, "sst2", dataclasses.replace(RECIPES["sst2"], files=(bad,)))
    out = tmp_path / "out"
    with pytest.raises(DataError, match="SST-2.zip") as info:
        download("sst2", out, fetch=LocalCopy(sources))
    assert wrong in str(info.value) and sha256(sources["SST-2.zip"]) in str(info.value)
    assert sorted(p.name for p in out.rglob("*")) == ["downloads"]  # no .part, no outputs
    assert download("sst2", out, fetch=LocalCopy(sources), verify=False)[0].is_file()


def fake_recipe(data: bytes, sha: str | None, url: str = "https://example.invalid/words.txt") -> Recipe:
    def copy_upper(archives: dict[str, Path], out_dir: Path) -> list[Path]:
        target = out_dir / "words.txt"
        target.write_text(archives["words.txt"].read_text().upper())
        return [target]

    return Recipe("fake", "a recipe for tests", (RemoteFile(url, "words.txt", sha),), copy_upper)


def test_fake_recipe_with_a_known_checksum_verifies_and_prepares(tmp_path, monkeypatch):
    data = b"hello world\n"
    (tmp_path / "words.txt").write_bytes(data)
    monkeypatch.setitem(RECIPES, "fake", fake_recipe(data, hashlib.sha256(data).hexdigest()))
    [out] = download("fake", tmp_path / "out", fetch=LocalCopy({"words.txt": tmp_path / "words.txt"}))
    assert out.read_text() == "HELLO WORLD\n"
    assert (tmp_path / "out" / "downloads" / "words.txt").read_bytes() == data


def test_unpinned_file_is_refused_with_its_checksum_unless_verify_is_off(tmp_path, monkeypatch):
    data = b"no checksum known\n"
    (tmp_path / "words.txt").write_bytes(data)
    monkeypatch.setitem(RECIPES, "fake", fake_recipe(data, None))
    fetch = LocalCopy({"words.txt": tmp_path / "words.txt"})
    with pytest.raises(DataError, match=hashlib.sha256(data).hexdigest()) as info:
        download("fake", tmp_path / "out", fetch=fetch)
    assert "no-verify" in str(info.value)
    [out] = download("fake", tmp_path / "out", fetch=fetch, verify=False)
    assert out.read_text() == "NO CHECKSUM KNOWN\n"


def test_default_fetcher_streams_with_urllib_and_reports_progress(tmp_path, monkeypatch):
    data = b"x" * 200_000  # file:// URLs go through urllib without any network
    (tmp_path / "words.txt").write_bytes(data)
    url = (tmp_path / "words.txt").as_uri()
    monkeypatch.setitem(RECIPES, "fake", fake_recipe(data, hashlib.sha256(data).hexdigest(), url))
    seen = []
    download("fake", tmp_path / "out", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(data), len(data)) and len(seen) > 1


def test_failed_fetch_is_a_data_error_and_leaves_no_part_file(tmp_path, monkeypatch):
    def offline(url: str, dest: Path) -> None:
        dest.write_bytes(b"half")
        raise urllib.error.URLError("no network")

    with pytest.raises(DataError, match="Could not download .*aclImdb_v1.tar.gz.*by hand"):
        download("imdb", tmp_path, fetch=offline)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_imdb_archive_is_a_clear_data_error(tmp_path, sources, damage):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    raw = sources["aclImdb_v1.tar.gz"].read_bytes()
    archive.write_bytes(b"<html>not found</html>" if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.raises(DataError, match="not a valid gzip-compressed tar archive.*download again"):
        prepare("imdb", {"aclImdb_v1.tar.gz": archive}, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no partial CSV


def test_corrupt_or_wrong_zip_is_a_clear_data_error(tmp_path):
    garbage = tmp_path / "SST-2.zip"
    garbage.write_bytes(b"PK\x03\x04 but not really a zip")
    with pytest.raises(DataError, match="not a valid zip archive"):
        prepare("sst2", {"SST-2.zip": garbage}, tmp_path / "out")
    other = make_zip(tmp_path / "other.zip", {"CoLA/train.tsv": b"x"})
    with pytest.raises(DataError, match="SST-2/train.tsv not found .*CoLA/train.tsv"):
        prepare("sst2", {"SST-2.zip": other}, tmp_path / "out")


def test_tar_without_reviews_is_refused(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", [("other/train/pos/0_9.txt", "x")])
    with pytest.raises(DataError, match="Is it the Stanford aclImdb_v1.tar.gz"):
        prepare("imdb", {"aclImdb_v1.tar.gz": archive}, tmp_path / "out")


def test_malformed_trec_line_names_file_and_line(tmp_path, sources):
    bad = tmp_path / "TREC_10.label"
    bad.write_bytes(b"NUM:date When ?\nWHAT:ever Is this ?\n")
    with pytest.raises(DataError, match=r"TREC_10.label:2: expected 'COARSE:fine question'"):
        prepare("trec", {"train_5500.label": sources["train_5500.label"], "TREC_10.label": bad}, tmp_path)


def test_unknown_corpus_and_missing_archive_are_explained(tmp_path, sources):
    with pytest.raises(DataError, match="Unknown corpus 'imbd'. Known corpora: imdb, sst2, trec"):
        download("imbd", tmp_path)
    with pytest.raises(DataError, match="needs TREC_10.label .*given: train_5500.label"):
        prepare("trec", {"train_5500.label": sources["train_5500.label"]}, tmp_path)
    with pytest.raises(DataError, match="nope not found"):
        prepare("trec", {"train_5500.label": tmp_path / "nope", "TREC_10.label": tmp_path}, tmp_path)


def test_recipes_are_listed_with_https_urls_and_pinned_checksums():
    recipes = corpora.list_recipes()
    assert [r.name for r in recipes] == ["imdb", "sst2", "trec"]
    for recipe in recipes:
        assert recipe.description and recipe.files
        for remote in recipe.files:
            assert remote.url.startswith("https://") and remote.url.endswith(remote.filename)
            assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256 or "")


# ---- the bundled corpus -------------------------------------------------------------------


def read_tsv(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "sentence\tlabel" and lines[-1] == ""
    return [tuple(line.split("\t")) for line in lines[1:-1]]


def test_bundled_corpus_is_balanced_distinct_and_well_formed():
    splits = {name: read_tsv(DEFAULT_CORPUS / f"{name}.tsv") for name in ("train", "dev", "test")}
    sentences = [s for rows in splits.values() for s, _ in rows]
    assert len(sentences) >= 700
    assert len({s.lower() for s in sentences}) == len(sentences)  # no duplicates, across splits too
    for name, rows in splits.items():
        assert all(len(row) == 2 and row[1] in ("positive", "negative") for row in rows), name
        positives = sum(label == "positive" for _, label in rows)
        assert positives * 2 == len(rows), name
    assert all(4 <= len(s.split()) <= 40 and '"' not in s for s in sentences)
    assert len(splits["train"]) / len(sentences) == pytest.approx(0.7, abs=0.02)
    assert len(splits["dev"]) == len(splits["test"])


def test_wheel_carries_the_bundled_corpus():
    # A wheel (non-editable) install has no ../corpora: pyproject maps corpora/ into the package
    # as textlstm.bundled, and DEFAULT_CORPUS looks there first.
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    tool = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert tool["package-dir"]["textlstm.bundled"] == "corpora" and "textlstm.bundled" in tool["packages"]
    patterns = tool["package-data"]["textlstm.bundled"]
    shipped = [p.relative_to(root / "corpora").as_posix() for p in (root / "corpora").rglob("*") if p.is_file()]
    assert shipped and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in shipped), shipped
    assert DEFAULT_CORPUS in (root / "corpora" / "sentiment", root / "textlstm" / "bundled" / "sentiment")
