"""Dataset catalogs: where candidate datasets come from, as one `DatasetRecord` schema.

In: bundled JSONL catalogs (`datatune_core/data/`), user catalogs, local data files, and (online only) the Hub.
Out: `DatasetRecord`s (configs, columns, license, family) and `(row_id, row)` streams of their rows.
Modules: `records` (schema, catalogs, rows), `localfiles` (CSV/JSON/Parquet/Arrow files), `hub` (Hugging Face Hub).
"""
