"""Reading input files row by row: JSONL, JSON array, Parquet, ``datasets`` saved to disk, and COCO / RefCOCO
annotation files (one JSON object that :mod:`.coco` turns into ms-swift grounding rows).

Every item is ``(num, obj, raw, error)``: ``num`` is the line number (JSONL, 1-based) or the row index
(0-based, JSON array / Parquet / dataset; :func:`where_kind` says which); ``raw`` is the original line
(bytes, JSONL only) for the reject file; ``error`` is a reason when the row could not be parsed.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
>>> _ = open(p, "wb").write(b'{"a": 1}\\n\\nnot json\\n')
>>> [(n, o, e) for n, o, _, e in iter_source(p)]
[(1, {'a': 1}, None), (3, None, 'invalid JSON: Expecting value (column 1)')]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional, Tuple

from ..errors import ConfigError
from ..io import Item, iter_jsonl_rows, parse_json_line
from .coco import iter_coco, looks_like_coco

__all__ = ["Item", "input_kind", "iter_source", "where_kind", "progress_total", "load_hf"]


def input_kind(path: str) -> str:
    """``jsonl``, ``json`` (array), ``coco`` (an annotation file), ``parquet`` or ``hf_disk`` from the path (and,
    for ``.json``, its first byte and line: see :func:`.coco.looks_like_coco`)."""
    p = Path(path)
    if p.is_dir():
        if (p / "state.json").exists() or (p / "dataset_dict.json").exists() or (p / "dataset_info.json").exists():
            return "hf_disk"
        raise ConfigError(f"{path}: a directory that is not a `datasets` save_to_disk folder (no state.json)")
    if not p.exists():
        raise ConfigError(f"{path}: no such file")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".json":
        with open(p, "rb") as fh:
            head = fh.read(4096).lstrip()
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:].lstrip()
        if head.startswith(b"["):
            return "json"
        return "coco" if head.startswith(b"{") and looks_like_coco(str(p)) else "jsonl"
    return "jsonl"


def iter_json_array(path: str, on_bytes=None) -> Iterator[Item]:
    data = Path(path).read_bytes()  # a JSON array cannot be streamed without a streaming parser
    obj, err = parse_json_line(data)
    if err is not None:
        raise ConfigError(f"{path}: the file is not valid JSON: {err}")
    if not isinstance(obj, list):
        raise ConfigError(f"{path}: expected a JSON array of rows, got a {type(obj).__name__}")
    if on_bytes is not None:
        on_bytes(len(data))
    del data
    for i, row in enumerate(obj):
        yield i, row, b"", None


def iter_parquet(path: str, on_bytes=None, batch_size: int = 1024) -> Iterator[Item]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    i = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield i, row, b"", None
            i += 1
        if on_bytes is not None:
            on_bytes(batch.num_rows)


def load_hf(path: str, split: Optional[str] = None):
    import datasets

    ds = datasets.load_from_disk(path)
    if isinstance(ds, datasets.DatasetDict):
        split = split or ("train" if "train" in ds else next(iter(ds)))
        if split not in ds:
            raise ConfigError(f"{path}: no split {split!r}; splits: {', '.join(ds)}")
        ds = ds[split]
    return ds


def iter_hf_disk(path: str, on_bytes=None, split: Optional[str] = None, batch_size: int = 1024) -> Iterator[Item]:
    ds = load_hf(path, split)
    i = 0
    # arrow format: Image features come back as their storage {bytes, path}, never decoded to PIL
    for table in ds.with_format("arrow").iter(batch_size=batch_size):
        for row in table.to_pylist():
            yield i, row, b"", None
            i += 1
        if on_bytes is not None:
            on_bytes(table.num_rows)


def where_kind(path: str) -> str:
    """``"line"`` (JSONL: numbers are 1-based line numbers) or ``"row"`` (0-based row indices; for an annotation
    file, the index of the row made from it)."""
    return "line" if input_kind(path) == "jsonl" else "row"


def iter_source(path: str, on_bytes=None, split: Optional[str] = None) -> Iterator[Item]:
    """Rows of ``path`` whatever its kind (see :func:`input_kind`)."""
    kind = input_kind(path)
    if kind == "jsonl":
        return iter_jsonl_rows(path, on_bytes)
    if kind == "json":
        return iter_json_array(path, on_bytes)
    if kind == "coco":
        return iter_coco(path, on_bytes, split)
    if kind == "parquet":
        return iter_parquet(path, on_bytes)
    return iter_hf_disk(path, on_bytes, split)


def progress_total(path: str, split: Optional[str] = None) -> Tuple[int, str]:
    """(total, unit) for a progress bar: bytes for JSON files, rows for Parquet / datasets."""
    kind = input_kind(path)
    if kind in ("jsonl", "json", "coco"):
        return os.path.getsize(path), "bytes"
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows, "rows"
    return len(load_hf(path, split)), "rows"
