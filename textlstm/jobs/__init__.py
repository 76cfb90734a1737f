"""Whole tasks built on the library, one module each, each a plain function the CLI calls:
`train` (read, train, evaluate, save), `predict` (file jobs: streamed, resumable), `explain`
(the attention page), `lrfind`, `search`, `compress`, `export` (ONNX). Imported one by one, so
that a command loads only what it runs."""
