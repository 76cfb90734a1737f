"""`textlstm find-threshold MODEL DATA`: retune a multi-label model's decision thresholds on a
labelled file and save them with the model (or into a copy with --out)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..classifier import TextClassifier
from ..data.readers import read_dataset
from ._common import (BadLinesOpt, EncodingOpt, FormatOpt, LabelFieldOpt, LabelSepOpt, TextFieldOpt, err,
                      handle_errors, model_data, out)


@handle_errors
def find_threshold(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="Multi-label model directory."),
    data: Path = typer.Argument(..., exists=True, help="Labelled data to tune on (not the test data you report)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="global (one threshold for every label) or per-label; default: the model's model.thresholds (fixed tunes global)."),
    score: Optional[str] = typer.Option(None, "--score", help="micro_f1 or macro_f1, the F1 to maximise; default: the model's train.multilabel_score."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Save the retuned model here instead of replacing MODEL."),
    overwrite: bool = typer.Option(False, "--overwrite", help="With --out: replace an existing model there."),
    label_sep: Optional[str] = LabelSepOpt,
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt, on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Tune the thresholds of a multi-label model on DATA to maximise micro- or macro-F1, show
    the scores before and after, and save the thresholds with the model."""
    from ..display import threshold_table
    from ..errors import ConfigError, DataError
    from ..thresholds import MODES, SCORES

    if mode is not None and mode not in MODES[:2]:
        raise typer.BadParameter(f"{mode!r} is not a mode: global or per-label.", param_hint="--mode")
    if score is not None and score not in SCORES:
        raise typer.BadParameter(f"{score!r} is not a score: {', '.join(SCORES)}.", param_hint="--score")
    if out_dir is not None and out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir} already exists; pass --overwrite to replace it or choose another --out.")
    clf = TextClassifier.load(model)
    if not clf.multilabel:
        raise ConfigError(f"{model} is a multi-class model (one label per text): it has no thresholds to tune.")
    examples, rep = read_dataset(data, model_data(clf, fmt, text_field, label_field, encoding, on_bad_lines, label_sep))
    err.print(rep.summary(), markup=False, highlight=False)
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    before, old = clf.evaluate(texts, labels), dict(clf.meta_.get("thresholds") or {})
    clf.find_threshold(texts, labels, mode=mode or ("global" if clf.config.model.thresholds == "fixed" else None),
                       score=score, source=str(data))
    after = clf.evaluate(texts, labels)
    out.print(threshold_table(old, clf.meta_["thresholds"], before, after, f"{data}: {after['n']} examples"))
    from ..locks import exclusive
    with exclusive(out_dir or model, "--out"):
        target = clf.save(out_dir or model)
    out.print(f"thresholds saved with the model in {target}")
