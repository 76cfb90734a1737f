"""Model directories: round trip, atomic replacement, and refusal of every kind of bad file."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from textlstm.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    backup_sibling,
    clean_stale_temps,
    restore_backup,
)
from textlstm.config import Config
from textlstm.data.vocab import Vocab
from textlstm.errors import ModelFileError
from textlstm.model.artifact import FORMAT_VERSION, Artifact, load_artifact, save_artifact

DEAD_PID = 2**31 - 1  # above any pid_max, so never a live process


def make_artifact(seed: int = 0) -> Artifact:
    g = torch.Generator().manual_seed(seed)
    vocab = Vocab.build([["the", "film", "was", "good"], ["bad", "film"]])
    tensors = {"embedding.weight": torch.randn(len(vocab), 4, generator=g),
               "head.weight": torch.randn(8, 2, generator=g).t(),  # (labels, 8), not contiguous
               "head.bias": torch.zeros(2), "steps": torch.tensor([seed], dtype=torch.int64)}
    meta = {"val": {"macro_f1": 0.5 + seed / 10}, "history": [{"epoch": 1, "unfrozen": False}]}
    return Artifact(Config().to_dict(), ["neg", "pos"], vocab, tensors, meta)


def assert_same(a: Artifact, b: Artifact) -> None:
    assert a.config == b.config and a.labels == b.labels and a.meta == b.meta and a.vocab == b.vocab
    assert a.tensors.keys() == b.tensors.keys()
    for name in a.tensors:
        assert a.tensors[name].dtype == b.tensors[name].dtype
        assert torch.equal(a.tensors[name], b.tensors[name]), name


def temps(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or p.name.endswith(".backup")]


def rewrite(model: Path, name: str, data: bytes) -> None:
    """Replace one file and update the manifest to match, so later checks are what refuses."""
    (model / name).write_bytes(data)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": __import__("hashlib").sha256(data).hexdigest(), "size": len(data)}
    (model / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def model(tmp_path) -> Path:
    return save_artifact(tmp_path / "model", make_artifact())


# -- round trip ---------------------------------------------------------------------------------

def test_round_trip(model):
    assert sorted(p.name for p in model.iterdir()) == [
        "config.json", "manifest.json", "model.safetensors", "vocab.txt"]
    assert_same(load_artifact(model), make_artifact())
    doc = json.loads((model / "config.json").read_text())
    assert doc["format_version"] == FORMAT_VERSION
    assert set(doc) == {"format_version", "textlstm_version", "library_versions", "config", "labels", "meta"}
    assert {"torch", "numpy", "spacy", "gensim", "safetensors", "scikit-learn", "python"} <= set(doc["library_versions"])
    manifest = json.loads((model / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.json", "vocab.txt", "model.safetensors"}
    assert manifest["files"]["vocab.txt"]["size"] == (model / "vocab.txt").stat().st_size


def test_replaces_an_earlier_model_and_keeps_user_files(model):
    (model / "notes.md").write_text("mine")
    (model / "plots").mkdir()
    (model / "plots" / "cm.png").write_bytes(b"png")
    save_artifact(model, make_artifact(seed=1))
    assert_same(load_artifact(model), make_artifact(seed=1))
    assert (model / "notes.md").read_text() == "mine"
    assert (model / "plots" / "cm.png").read_bytes() == b"png"
    assert temps(model.parent) == []


def test_saves_into_an_empty_directory(tmp_path):
    (tmp_path / "out").mkdir()
    assert_same(load_artifact(save_artifact(tmp_path / "out", make_artifact())), make_artifact())


# -- atomicity ----------------------------------------------------------------------------------

def test_crash_while_writing_keeps_previous_model(model, monkeypatch):
    real_write = Path.write_bytes

    def crash(self, data):
        if self.name == "model.safetensors":
            real_write(self, data[:len(data) // 2])
            raise OSError("the cable came loose")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", crash)
    with pytest.raises(OSError, match="cable"):
        save_artifact(model, make_artifact(seed=1))
    assert_same(load_artifact(model), make_artifact())
    assert clean_stale_temps(model.parent) == [] and temps(model.parent) == []


def test_crash_during_swap_keeps_previous_model(model, monkeypatch):
    real = os.replace

    def failing(src, dst):
        if ".tmp-" in str(src):
            raise OSError("rename failed")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="rename failed"):
        save_artifact(model, make_artifact(seed=1))
    assert_same(load_artifact(model), make_artifact())
    assert temps(model.parent) == []


def run_killed_save(src: Path, dst: Path, patch: str) -> None:
    code = "\n".join(["import os, safetensors.torch",
                      "from textlstm.model.artifact import load_artifact, save_artifact",
                      f"art = load_artifact({str(src)!r})", patch, f"save_artifact({str(dst)!r}, art)"])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=dst.parent)  # a scratch dir, not the repository
    assert proc.returncode == 9, proc.stderr


def test_killed_writer_leaves_previous_model_and_a_removable_temp(tmp_path, model):
    other = save_artifact(tmp_path / "other", make_artifact(seed=1))
    run_killed_save(other, model, textwrap.dedent("""
        from pathlib import Path
        real = Path.write_bytes
        def die(self, data):
            if self.name == "model.safetensors":
                real(self, data[:100])
                os._exit(9)
            return real(self, data)
        Path.write_bytes = die"""))
    assert_same(load_artifact(model), make_artifact())
    left = [p for p in model.parent.iterdir() if ".tmp-" in p.name]
    assert len(left) == 1 and left[0].is_dir()
    assert clean_stale_temps(model.parent) == left
    assert temps(model.parent) == []


def test_killed_between_renames_is_reported_and_recoverable(tmp_path, model):
    other = save_artifact(tmp_path / "other", make_artifact(seed=1))
    run_killed_save(other, model, textwrap.dedent("""
        real = os.replace
        def die(src, dst):
            if ".tmp-" in str(src):
                os._exit(9)
            real(src, dst)
        os.replace = die"""))
    assert not model.exists() and backup_sibling(model).is_dir()
    with pytest.raises(ModelFileError, match="interrupted") as err:
        load_artifact(model)
    assert str(backup_sibling(model)) in str(err.value)
    assert restore_backup(model)
    assert_same(load_artifact(model), make_artifact())
    save_artifact(model, make_artifact(seed=3))  # also sweeps the dead writer's temporary
    assert_same(load_artifact(model), make_artifact(seed=3))
    assert temps(model.parent) == []


def test_next_save_settles_an_interrupted_one(model):
    os.replace(model, backup_sibling(model))  # as if killed between the two renames
    save_artifact(model, make_artifact(seed=2))
    assert_same(load_artifact(model), make_artifact(seed=2))
    assert temps(model.parent) == []


def test_atomic_file_helpers(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.txt.tmp-")
        tmp.write_text("three")
        raise RuntimeError
    assert target.read_bytes() == b"two" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_clean_stale_temps_spares_live_writers_and_other_files(tmp_path):
    dead_file = tmp_path / f".x.tmp-{DEAD_PID}-abcd"
    dead_dir = tmp_path / f".model.tmp-{DEAD_PID}-12ef"
    live = tmp_path / f".y.tmp-{os.getpid()}-abcd"
    keep = [tmp_path / "notes.tmp-1-2", tmp_path / ".model.backup", live]
    dead_file.write_text("x")
    dead_dir.mkdir()
    (dead_dir / "config.json").write_text("{}")
    for p in keep:
        p.write_text("keep")
    assert clean_stale_temps(tmp_path) == sorted([dead_dir, dead_file])
    assert sorted(tmp_path.iterdir()) == sorted(keep)


# -- refusals on save ---------------------------------------------------------------------------

def test_refuses_to_replace_a_users_folder(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    with pytest.raises(ModelFileError, match="not a textlstm model"):
        save_artifact(folder, make_artifact())
    assert (folder / "chapter1.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="not a directory"):
        save_artifact(tmp_path / "file", make_artifact())


# -- refusals on load ---------------------------------------------------------------------------

def test_missing_directory_and_files(tmp_path, model):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_artifact(tmp_path / "nowhere")
    (model / "vocab.txt").unlink()
    with pytest.raises(ModelFileError, match="vocab.txt is missing"):
        load_artifact(model)
    (model / "config.json").unlink()
    with pytest.raises(ModelFileError, match="config.json is missing"):
        load_artifact(model)


def test_corrupt_config(model):
    (model / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="config.json is not valid JSON"):
        load_artifact(model)
    (model / "config.json").write_text(json.dumps({"format_version": 1, "config": {}}))
    with pytest.raises(ModelFileError, match="config.json lacks the keys labels, meta"):
        load_artifact(model)


def test_newer_format_version(model):
    doc = json.loads((model / "config.json").read_text())
    doc.update(format_version=2, textlstm_version="9.0")
    (model / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="textlstm 9.0 with format 2; this release reads format 1; upgrade"):
        load_artifact(model)


def test_flipped_byte_fails_the_checksum(model):
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-3] ^= 0x01
    (model / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="model.safetensors failed its checksum.*corrupt or was modified"):
        load_artifact(model)


class Exploit:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_renamed_to_safetensors_is_never_unpickled(tmp_path, model):
    probe, probe_marker = tmp_path / "probe.pt", tmp_path / "probe-ran"
    torch.save({"w": Exploit(probe_marker)}, probe)
    torch.load(probe, weights_only=False)  # proves the payload really runs code when unpickled
    assert probe_marker.exists()

    marker = tmp_path / "pwned"
    torch.save({"embedding.weight": Exploit(marker)}, model / "model.safetensors")
    with pytest.raises(ModelFileError, match="failed its checksum"):
        load_artifact(model)
    rewrite(model, "model.safetensors", (model / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="not a valid safetensors file.*pickle"):
        load_artifact(model)
    assert not marker.exists()

    rewrite(model, "model.safetensors", pickle.dumps(Exploit(marker), protocol=2))  # legacy format
    with pytest.raises(ModelFileError, match="not a valid safetensors file.*pickle"):
        load_artifact(model)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [3, 20, -10])
def test_truncated_tensors_file(model, keep):
    data = (model / "model.safetensors").read_bytes()
    rewrite(model, "model.safetensors", data[:keep])
    with pytest.raises(ModelFileError, match="model.safetensors is not a valid safetensors file"):
        load_artifact(model)


def test_header_claiming_terabytes_is_refused_quickly(model):
    rewrite(model, "model.safetensors", (2**40).to_bytes(8, "little") + b"{}" * 100)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=f"header claims {2**40} bytes"):
        load_artifact(model)
    assert time.perf_counter() - start < 1.0


def test_tensor_claiming_terabytes_is_refused(model):
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}})
    raw = header.encode()
    rewrite(model, "model.safetensors", len(raw).to_bytes(8, "little") + raw + b"\0" * 16)
    with pytest.raises(ModelFileError, match="'w' has data_offsets .* outside the 16 data bytes"):
        load_artifact(model)


def test_corrupt_vocab(model):
    rewrite(model, "vocab.txt", b"hello\nworld\n")
    with pytest.raises(ModelFileError, match="vocab.txt is corrupt"):
        load_artifact(model)


def real_shapes(config, vocab_size, n_labels):
    return {"embedding.weight": (vocab_size, 4), "head.weight": (n_labels, 8), "head.bias": (n_labels,),
            "steps": (1,)}


def test_expected_shapes_pass(model):
    assert_same(load_artifact(model, expected_shapes=real_shapes), make_artifact())


def test_shape_mismatches_are_listed(model):
    n_tokens = len(make_artifact().vocab)
    rewrite(model, "vocab.txt", (model / "vocab.txt").read_bytes() + b"new\nwords\n")
    doc = json.loads((model / "config.json").read_text())
    doc["labels"].append("neutral")
    rewrite(model, "config.json", json.dumps(doc).encode())

    def shapes(config, vocab_size, n_labels):
        assert config["model"]["hidden_size"] == Config().model.hidden_size
        expected = {**real_shapes(config, vocab_size, n_labels), "attention.weight": (4,)}
        del expected["steps"]
        return expected

    with pytest.raises(ModelFileError) as err:
        load_artifact(model, expected_shapes=shapes)
    message = str(err.value)
    assert "missing tensor 'attention.weight'" in message and "unexpected tensor 'steps'" in message
    assert (f"'embedding.weight' has shape ({n_tokens}, 4), the config expects ({n_tokens + 2}, 4); "
            f"rows must match the {n_tokens + 2} tokens of vocab.txt") in message
    assert "'head.weight' has shape (2, 8), the config expects (3, 8); rows must match the 3 labels" in message
    assert "'head.bias' has shape (2,), the config expects (3,)" in message
