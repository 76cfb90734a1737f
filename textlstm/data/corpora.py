"""The bundled sentiment corpus, and recipes that download and prepare public corpora.

A `Recipe` names its files (URL, file name, pinned SHA-256) and a `prepare` function that turns
them into files textlstm's readers take: IMDB -> `train.csv`/`test.csv` (`review,sentiment`),
SST-2 -> `train.tsv`/`dev.tsv` (GLUE's `sentence<TAB>label`, labels 0/1), TREC ->
`train.jsonl`/`test.jsonl` (`text`, `label` = coarse class `DESC`, `fine` = `DESC:manner`).

    >>> download("trec", Path("data/trec"))  # doctest: +SKIP
    [PosixPath('data/trec/train.jsonl'), PosixPath('data/trec/test.jsonl')]
"""
from __future__ import annotations

import csv
import functools
import json
import logging
import re
import shutil
import tarfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from textlstm.atomic import atomic_path
from textlstm.errors import DataError, where
from textlstm.hashing import file_sha256

logger = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parents[1]  # textlstm/
#: The small English sentiment corpus written for this project (train/dev/test TSV): the
#: checkout's `corpora/sentiment`, which a wheel carries as `textlstm/bundled/sentiment`.
_BUNDLED = _PACKAGE / "bundled" / "sentiment"
DEFAULT_CORPUS = _BUNDLED if _BUNDLED.is_dir() else _PACKAGE.parent / "corpora" / "sentiment"

Fetch = Callable[[str, Path], None]
Progress = Callable[[int, int | None], None]
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RemoteFile:
    """One file to download. `sha256=None` means no pinned checksum (needs `verify=False`)."""

    url: str
    filename: str
    sha256: str | None


@dataclass(frozen=True)
class Recipe:
    """A public corpus: where to get it and how to turn the downloads into readable files."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    prepare: Callable[[dict[str, Path], Path], list[Path]]


@contextmanager
def _atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path`, renamed onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    with atomic_path(path) as tmp, open(tmp, mode, **text) as handle:
        yield handle


def _bad_archive(path: Path, kind: str, exc: BaseException) -> DataError:
    return DataError(
        f"{path} is not a valid {kind} ({type(exc).__name__}: {exc}). "
        "The download is probably truncated or corrupt: delete it and download again."
    )


_IMDB_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")
_IMDB_LABELS = {"pos": "positive", "neg": "negative"}


def _imdb_reviews(archive: Path) -> Iterator[tuple[str, str, str]]:
    """Yield (split, sentiment, review) straight from the tar.gz, in archive order."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = _IMDB_MEMBER.match(member.name)
                stream = tar.extractfile(member) if match and member.isfile() else None
                if stream is not None:
                    review = stream.read().decode("utf-8", errors="replace").strip()
                    yield match.group(1), _IMDB_LABELS[match.group(2)], review
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _bad_archive(archive, "gzip-compressed tar archive", exc) from exc


def prepare_imdb(archives: dict[str, Path], out_dir: Path) -> list[Path]:
    """aclImdb_v1.tar.gz -> `train.csv`, `test.csv` with columns `review,sentiment`."""
    archive = archives["aclImdb_v1.tar.gz"]
    paths = {split: out_dir / f"{split}.csv" for split in ("train", "test")}
    counts = dict.fromkeys(paths, 0)
    with ExitStack() as stack:
        writers = {s: csv.writer(stack.enter_context(_atomic_open(p))) for s, p in paths.items()}
        for writer in writers.values():
            writer.writerow(["review", "sentiment"])
        for split, sentiment, review in _imdb_reviews(archive):
            writers[split].writerow([review, sentiment])
            counts[split] += 1
        missing = [split for split, n in counts.items() if n == 0]
        if missing:
            raise DataError(
                f"No aclImdb/{missing[0]}/{{pos,neg}}/*.txt reviews in {archive}. "
                "Is it the Stanford aclImdb_v1.tar.gz?"
            )
    logger.info("IMDB: %d train and %d test reviews", counts["train"], counts["test"])
    return list(paths.values())


def prepare_sst2(archives: dict[str, Path], out_dir: Path) -> list[Path]:
    """SST-2.zip -> `train.tsv`, `dev.tsv` copied byte for byte from the zip's `SST-2/`."""
    archive = archives["SST-2.zip"]
    written = []
    try:
        with zipfile.ZipFile(archive) as bundle:
            for split in ("train", "dev"):
                written.append(_copy_sst2_member(bundle, archive, split, out_dir))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _bad_archive(archive, "zip archive", exc) from exc
    return written


def _copy_sst2_member(bundle: zipfile.ZipFile, archive: Path, split: str, out_dir: Path) -> Path:
    member = f"SST-2/{split}.tsv"
    if member not in bundle.namelist():
        found = ", ".join(bundle.namelist()[:8]) or "nothing"
        raise DataError(f"{member} not found in {archive} (it holds: {found}). Is it GLUE SST-2.zip?")
    target = out_dir / f"{split}.tsv"
    with bundle.open(member) as source, _atomic_open(target, "wb") as out:
        header = source.readline()
        if header.rstrip(b"\r\n") != b"sentence\tlabel":
            raise DataError(f"{member} in {archive} starts with {header[:60]!r}, not 'sentence<TAB>label'.")
        out.write(header)
        shutil.copyfileobj(source, out)
    return target


TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


def _trec_record(line: str, path: Path, number: int) -> dict[str, str]:
    """`DESC:manner How did ... ?` -> {"text": ..., "label": "DESC", "fine": "DESC:manner"}."""
    fine, _, text = line.partition(" ")
    coarse, colon, sub = fine.partition(":")
    if coarse not in TREC_COARSE or not colon or not sub or not text.strip():
        raise DataError(
            f"{where(path, number)}: expected 'COARSE:fine question' with COARSE one of "
            f"{', '.join(TREC_COARSE)}; got {line[:60]!r}."
        )
    return {"text": text.strip(), "label": coarse, "fine": fine}


def _convert_trec(source: Path, target: Path) -> int:
    count = 0
    with source.open(encoding="latin-1", newline="") as lines, _atomic_open(target) as out:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                record = _trec_record(line.rstrip("\r\n"), source, number)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    if count == 0:
        raise DataError(f"{source} holds no questions. Delete it and download again.")
    return count


def prepare_trec(archives: dict[str, Path], out_dir: Path) -> list[Path]:
    """train_5500.label / TREC_10.label (latin-1) -> `train.jsonl` / `test.jsonl`."""
    pairs = {"train_5500.label": "train.jsonl", "TREC_10.label": "test.jsonl"}
    written = []
    for filename, output in pairs.items():
        count = _convert_trec(archives[filename], out_dir / output)
        logger.info("TREC: %d questions -> %s", count, output)
        written.append(out_dir / output)
    return written


# Pinned checksums match the ones published by several independent loaders (for example the
# Hugging Face `glue` and `trec` dataset metadata); they were not re-computed here.
_TREC_BASE = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
RECIPES: dict[str, Recipe] = {
    "imdb": Recipe(
        "imdb",
        "Large Movie Review Dataset (Maas et al., 2011): 25,000 train + 25,000 test reviews, "
        "positive/negative.",
        (RemoteFile("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    "aclImdb_v1.tar.gz",
                    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"),),
        prepare_imdb,
    ),
    "sst2": Recipe(
        "sst2",
        "Stanford Sentiment Treebank, binary, GLUE version (Socher et al., 2013): "
        "67,349 train + 872 dev sentences, labels 0/1.",
        (RemoteFile("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "SST-2.zip",
                    "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa"),),
        prepare_sst2,
    ),
    "trec": Recipe(
        "trec",
        "TREC question classification (Li & Roth, 2002): 5,452 train + 500 test questions, "
        "6 coarse and 50 fine classes.",
        (RemoteFile(_TREC_BASE + "train_5500.label", "train_5500.label",
                    "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3"),
         RemoteFile(_TREC_BASE + "TREC_10.label", "TREC_10.label",
                    "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e")),
        prepare_trec,
    ),
}


def list_recipes() -> list[Recipe]:
    """All recipes, sorted by name."""
    return [RECIPES[name] for name in sorted(RECIPES)]


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; a `DataError` lists the known names otherwise."""
    if name not in RECIPES:
        raise DataError(f"Unknown corpus {name!r}. Known corpora: {', '.join(sorted(RECIPES))}.")
    return RECIPES[name]


def prepare(name: str, archives: dict[str, Path], out_dir: Path) -> list[Path]:
    """Convert already downloaded files (keyed by file name) into `out_dir`; return the outputs."""
    recipe = get_recipe(name)
    for remote in recipe.files:
        path = archives.get(remote.filename)
        if path is None:
            given = ", ".join(sorted(archives)) or "none"
            raise DataError(f"Corpus {name!r} needs {remote.filename} ({remote.url}); given: {given}.")
        if not Path(path).is_file():
            raise DataError(f"{path} not found (corpus {name!r} needs it as {remote.filename}).")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return recipe.prepare({key: Path(value) for key, value in archives.items()}, Path(out_dir))


def _urllib_fetch(url: str, dest: Path, progress: Progress | None = None) -> None:
    """Stream `url` to `dest` with urllib, reporting (bytes so far, total or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": "textlstm"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, dest.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        while block := response.read(1 << 16):
            out.write(block)
            done += len(block)
            if progress is not None:
                progress(done, total)


def _check_sha256(path: Path, remote: RemoteFile, verify: bool) -> None:
    """Raise `DataError` unless `path` may be used; with `verify=False` only log its checksum."""
    actual = file_sha256(path)
    if not verify:
        logger.warning("Not verifying %s (SHA-256 %s)", remote.filename, actual)
    elif remote.sha256 is None:
        raise DataError(
            f"{remote.filename} ({remote.url}) has no pinned SHA-256, so it cannot be verified. "
            f"Its SHA-256 is {actual}: compare it with a trusted source, then use "
            "verify=False (CLI: --no-verify)."
        )
    elif actual != remote.sha256.lower():
        raise DataError(
            f"Checksum mismatch for {remote.filename} ({remote.url}): expected SHA-256 "
            f"{remote.sha256}, got {actual}. The download is corrupt or the file changed "
            "upstream; try again, or use verify=False (CLI: --no-verify) if you trust it."
        )


def _ensure_file(remote: RemoteFile, downloads: Path, verify: bool, fetch: Fetch) -> Path:
    """Download one file to `downloads/filename` via a `.part` file, unless already there."""
    target = downloads / remote.filename
    if target.is_file():
        try:
            _check_sha256(target, remote, verify)
            logger.info("Using %s (already downloaded)", target)
            return target
        except DataError:
            if remote.sha256 is None:
                raise
            logger.warning("%s fails its checksum; downloading it again", target)
    part = target.with_name(target.name + ".part")
    logger.info("Downloading %s to %s", remote.url, target)
    try:
        fetch(remote.url, part)
        _check_sha256(part, remote, verify)
    except OSError as exc:  # includes urllib's URLError and timeouts
        part.unlink(missing_ok=True)
        raise DataError(
            f"Could not download {remote.url}: {exc}. Check the network, or download it by "
            f"hand to {target} and run again."
        ) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(target)
    return target


def download(name: str, out_dir: Path, *, verify: bool = True, fetch: Fetch | None = None,
             progress: Progress | None = None) -> list[Path]:
    """Download corpus `name` into `out_dir/downloads`, verify it, prepare it into `out_dir`.

    Files already in `out_dir/downloads` with the right checksum are not fetched again; new ones
    arrive as `.part` files, renamed once verified. `fetch(url, dest)` writes one URL to a file
    (default: urllib, streamed, with a timeout; tests pass one that copies a local file).
    `progress(done, total)` hears byte counts from the default fetcher (`total` may be None).
    A checksum mismatch, or a file without pinned checksum, raises `DataError` unless
    `verify=False`. Returns the prepared files.

    >>> download("sst2", Path("data/sst2"))  # doctest: +SKIP
    [PosixPath('data/sst2/train.tsv'), PosixPath('data/sst2/dev.tsv')]
    """
    recipe = get_recipe(name)
    downloads = Path(out_dir) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fetcher = fetch if fetch is not None else functools.partial(_urllib_fetch, progress=progress)
    archives = {
        remote.filename: _ensure_file(remote, downloads, verify, fetcher)
        for remote in recipe.files
    }
    return prepare(name, archives, Path(out_dir))
