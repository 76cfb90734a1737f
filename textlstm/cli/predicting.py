"""`textlstm predict`: texts from arguments, standard input or --input; rows to standard output
or to --output FILE, in the format its name says or --output-format."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from ..classifier import TextClassifier
from ..data.records import Example, ReadReport
from ..errors import DataError
from ._common import (EncodingOpt, FormatOpt, LabelFieldOpt, LabelSepOpt, TextFieldOpt, ThresholdOpt, err,
                      handle_errors, model_data, out)


@handle_errors
def predict(
    model: Path = typer.Argument(..., help="Model directory."),
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to classify (without them and without --input: standard input, one text per line)."),
    input_path: Optional[Path] = typer.Option(None, "--input", exists=True, help="File of texts (CSV/TSV/JSONL/fastText/text; labels, if any, come out as 'gold')."),
    output: Optional[str] = typer.Option(None, "--output", help="Write rows here (.csv, .jsonl, .txt) instead of standard output ('-')."),
    output_format: Optional[str] = typer.Option(None, "--output-format", help="csv, jsonl or lines (label, probabilities, text). Default: from --output's name; on standard output lines, or jsonl for --input."),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="With --input (csv/tsv/jsonl): put this field in each row instead of the text."),
    proba: bool = typer.Option(False, "--proba", help="lines format: print class probabilities too (csv and jsonl always hold them)."),
    explain: Optional[Path] = typer.Option(None, "--explain", help="Also write an HTML page shading each text's tokens by attention."),
    batch_size: int = typer.Option(256, "--batch-size", help="Texts per forward pass."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted --input job from <output>.partial."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    threshold: Optional[float] = ThresholdOpt,
    at_least_one: bool = typer.Option(False, "--at-least-one", help="Multi-label models: a text with no label above its threshold gets its most probable one."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Also give the k most probable labels with their probabilities (jsonl and lines)."),
    label_sep: Optional[str] = LabelSepOpt,
    fmt: Optional[str] = FormatOpt, text_field: Optional[str] = TextFieldOpt, label_field: Optional[str] = LabelFieldOpt,
    encoding: Optional[str] = EncodingOpt,
):
    """Predict labels for texts given as arguments, on standard input, or in a file."""
    from ..jobs.predict import predict_file, predict_stream, read_for_prediction
    from ..jobs.rows import OUTPUT_FORMATS, columns_for, output_format as format_of

    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"{output_format!r} is not a format: {', '.join(OUTPUT_FORMATS)}.",
                                 param_hint="--output-format")
    to_stdout = output in (None, "-")
    if resume and (input_path is None or to_stdout):
        raise typer.BadParameter("--resume continues a job with --input and --output FILE.", param_hint="--resume")
    if texts and input_path is not None:
        raise typer.BadParameter("give texts as arguments or with --input, not both.", param_hint="--input")
    if id_field and input_path is None:
        raise typer.BadParameter("--id-field names a field of the --input file.", param_hint="--id-field")
    if explain and input_path is not None:
        raise typer.BadParameter("--explain shows texts given as arguments or on standard input.", param_hint="--explain")
    if not to_stdout:
        try:
            fmt_out = format_of(output, output_format)
        except DataError as exc:
            raise typer.BadParameter(str(exc), param_hint="--output") from None
    else:
        fmt_out = output_format or ("jsonl" if input_path is not None else "lines")
    clf = TextClassifier.load(model)
    data = model_data(clf, fmt, text_field, label_field, encoding, None, label_sep)
    decisions = {"threshold": threshold, "at_least_one": at_least_one, "top_k": top_k}
    if input_path is not None and not to_stdout:
        try:
            summary = predict_file(clf, input_path, output, data=data, batch_size=batch_size, resume=resume,
                                   overwrite=overwrite, format=fmt_out, id_field=id_field, **decisions)
        except KeyboardInterrupt:
            err.print(f"error: interrupted; rerun with --resume to continue from {output}.partial")
            raise typer.Exit(130) from None
        err.print(summary.report.summary(), markup=False, highlight=False)
        out.print(f"wrote {summary.rows} predictions to {summary.output}"
                  + (f" ({summary.resumed_from} from the interrupted run)" if summary.resumed_from else "")
                  + (f"; {summary.errors} rows have an error (see the error column)" if summary.errors else ""),
                  markup=False, highlight=False)
        return
    if input_path is not None:
        report = ReadReport()
        examples, cols = read_for_prediction(clf, input_path, data, id_field, report, **decisions)
    else:
        texts = list(texts or [])
        if not texts and not sys.stdin.isatty():
            texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not texts:
            raise typer.BadParameter("Give texts as arguments, on standard input, or with --input.")
        examples = [Example(t, None, i, "<arguments>") for i, t in enumerate(texts, 1)]
        cols = columns_for(clf, proba=proba, **decisions)
    if fmt_out == "lines":
        cols = replace(cols, proba=proba)
    rows = predict_stream(clf, examples, fmt_out, cols, batch_size=batch_size)
    if to_stdout:
        for text in rows:
            sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from ..atomic import atomic_write_text
        from ..locks import exclusive
        path = Path(output)
        with exclusive(path, "--output"):
            if path.exists() and not overwrite:
                raise DataError(f"{path} already exists; pass --overwrite to replace it or choose another --output.")
            atomic_write_text(path, "".join(rows))
        err.print(f"wrote {len(examples)} predictions to {path}", markup=False, highlight=False)
    if input_path is not None:
        err.print(report.summary(), markup=False, highlight=False)
    if explain:
        from ..jobs.explain import write_html
        write_html(clf.explain(texts), explain)
        err.print(f"explanations written to {explain}", markup=False, highlight=False)
