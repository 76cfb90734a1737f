"""`textlstm ensemble M1 M2 … --out E`: one model that averages several models' probabilities.
The ensemble directory is a model every command takes (`textlstm.ensemble`)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..classifier import TextClassifier
from ..data.readers import read_dataset
from ._common import (BadLinesOpt, EncodingOpt, FormatOpt, LabelFieldOpt, LabelSepOpt, TextFieldOpt, err,
                      handle_errors, model_data, out)


def _weights(text: Optional[str], n: int) -> Optional[list[float]]:
    if text is None:
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers.", param_hint="--weights")
    if len(weights) != n:
        raise typer.BadParameter(f"{len(weights)} weights for {n} models: give one per model.", param_hint="--weights")
    return weights


@handle_errors
def ensemble(
    models: List[Path] = typer.Argument(..., exists=True, file_okay=False, help="Two or more model directories (same labels and tokenizer settings)."),
    out_dir: Path = typer.Option(..., "--out", help="Ensemble directory to write."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Comma-separated weight per model, e.g. 2,1,1 (default: equal)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model or ensemble at --out."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", exists=True, help="Labelled data (a validation file, not your test set): score each member and the ensemble on it."),
    label_sep: Optional[str] = LabelSepOpt,
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt, on_bad_lines: Optional[str] = BadLinesOpt,
):
    """Combine trained models into one that predicts the weighted mean of their probabilities
    (multi-label: of each label's probability, with the members' mean thresholds; retune them
    with find-threshold). The members may differ in seed, cell, sizes and vectors."""
    from ..errors import DataError
    from ..locks import exclusive

    if out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir} already exists; pass --overwrite to replace it or choose another --out.")
    if any(out_dir.resolve() == m.resolve() for m in models):
        raise DataError(f"--out {out_dir} is one of the members; write the ensemble elsewhere.")
    members = [TextClassifier.load(m) for m in models]
    clf = TextClassifier.ensemble(members, _weights(weights, len(models)), sources=[str(m) for m in models])
    if eval_data is not None:
        from ..display import ensemble_table
        examples, rep = read_dataset(eval_data, model_data(clf, fmt, text_field, label_field, encoding,
                                                           on_bad_lines, label_sep))
        err.print(rep.summary(), markup=False, highlight=False)
        texts, labels = [e.text for e in examples], [e.label for e in examples]
        reports = [(str(m), member.evaluate(texts, labels)) for m, member in zip(models, members)]
        out.print(ensemble_table(reports + [("ensemble", clf.evaluate(texts, labels))], f"{eval_data}: {len(texts)} examples"))
    with exclusive(out_dir, "--out"):
        target = clf.save(out_dir)
    out.print(f"ensemble of {len(members)} models saved to {target}")
