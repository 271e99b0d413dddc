"""The hybrid search index over dataset catalogs: BM25 (bm25s) + dense MiniLM vectors (faiss), persisted on disk.

In: catalog paths -> Out: a `SearchIndex` with `bm25_scores(text)` and `dense_scores(text)` over the records.
The index lives in DATATUNE_HOME/index/<key>/ (key = the catalog set + indexed fields). It is rebuilt when a
catalog file changes (size or mtime), and the rebuild is incremental: document embeddings are cached in
DATATUNE_HOME/index/embeddings.sqlite keyed by the hash of the embedded text (which is a function of the
record's content), so only new or edited records are embedded again.

    >>> from datatune_core.retrieval.index import load_index
    >>> idx = load_index(["tests/fixtures/tiny_catalog.jsonl"])        # builds on first use, then loads
    >>> idx.bm25_scores("sentiment of movie reviews")[:3]
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datatune_core.catalog.records import CatalogProblem, DatasetRecord, default_catalog_paths, load_catalogs
from datatune_core.config import load_settings
from datatune_core.retrieval.embeddings import EMBEDDERS, EmbeddingCache, SEED_PATH, _seed_vectors, embed
from datatune_core.retrieval.documents import FIELD_GROUPS, IndexConfig, doc_text, sample_text


INDEX_VERSION = 3  # 3: per-field BM25 indexes and a sample-rows vector per record
Progress = Callable[[str, int, int], None]


def write_vector_seed(paths: Sequence[Path | str], out: Path = SEED_PATH, config: IndexConfig | None = None) -> int:
    """Embed the records of `paths` and write them as a seed file (run after changing doc_text or the model):
    `python -m datatune_core.retrieval.index datatune_core/data/hf_catalog.jsonl.gz`."""
    config = config or IndexConfig()
    records = load_catalogs(paths).records
    texts = list(dict.fromkeys([doc_text(r, config.dense_fields) for r in records]
                               + [t for t in (sample_text(r) for r in records) if t]))
    order = sorted(texts, key=len, reverse=True)
    keys = np.array([EmbeddingCache.key(t, config.max_seq_length) for t in order])
    known = _seed_vectors()  # texts already in the shipped seed are not embedded again
    todo = [t for t, k in zip(order, keys) if str(k) not in known]
    fresh = dict(zip(todo, embed(todo, config.max_seq_length))) if todo else {}
    vecs = np.stack([fresh[t] if t in fresh else known[str(k)] for t, k in zip(order, keys)])
    np.savez_compressed(out, keys=keys, vectors=vecs.astype("float16"))
    return len(keys)


_QUERY_VECS: dict[tuple[str, int, str], np.ndarray] = {}


# ------------------------------------------------------------------------------------- the index
def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # PyStemmer is optional; BM25 still works on surface forms
        return None


def _tokenize(texts: list[str], stemmer) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)


@dataclass
class SearchIndex:
    records: list[DatasetRecord]
    embeddings: np.ndarray
    bm25: object
    config: IndexConfig
    path: Path | None = None
    problems: list[CatalogProblem] = field(default_factory=list)
    built_at: float = 0.0
    stats: dict = field(default_factory=dict)
    field_bm25: dict = field(default_factory=dict)  # FIELD_GROUPS name -> bm25s index over that field alone
    sample_embeddings: np.ndarray | None = None  # one vector per record of its sample rows (zeros: none)
    has_samples: np.ndarray | None = None

    def __post_init__(self) -> None:
        import faiss

        self._stemmer = _stemmer()
        self.faiss = faiss.IndexFlatIP(self.embeddings.shape[1] if self.embeddings.size else 384)
        if len(self.embeddings):
            self.faiss.add(np.ascontiguousarray(self.embeddings, dtype="float32"))
        self.pos = {r.id: i for i, r in enumerate(self.records)}

    def __len__(self) -> int:
        return len(self.records)

    def tokens(self, text: str) -> list[str]:
        """The query's BM25 tokens (stopwords removed, stemmed like the index)."""
        return list(_tokenize([text], self._stemmer)[0])

    def bm25_scores(self, text: str, field: str | None = None, tokens: list[str] | None = None) -> np.ndarray:
        """BM25 score of every record over all indexed fields, or over one of FIELD_GROUPS (0: no term matches)."""
        bm = self.bm25 if field is None else self.field_bm25.get(field)
        toks = self.tokens(text) if tokens is None else tokens
        vocab = getattr(bm, "vocab_dict", {}) or {}
        toks = [t for t in toks if t in vocab]
        if bm is None or not toks or not len(self.records):
            return np.zeros(len(self.records), dtype="float32")
        return np.asarray(bm.get_scores(toks), dtype="float32")

    def sample_similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of a vector to every record's sample rows (-1 where a record has none)."""
        if self.sample_embeddings is None or not len(self.records):
            return np.full(len(self.records), -1.0, dtype="float32")
        sims = self.sample_embeddings @ np.asarray(vector, dtype="float32").reshape(-1)
        return np.where(self.has_samples, sims, -1.0).astype("float32")

    def main_similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of a vector to every record's description vector."""
        if not len(self.records):
            return np.zeros(0, dtype="float32")
        return (self.embeddings @ np.asarray(vector, dtype="float32").reshape(-1)).astype("float32")

    def query_vector(self, text: str) -> np.ndarray:
        """One short query: encoded on 1 torch thread (2 threads on a tiny input are slower on a busy CPU and,
        after a large batch, 10-20x slower; measured in bench/retrieval_speed.py)."""
        import torch

        return self.query_vectors([text])[0:1]

    def query_vectors(self, texts: list[str]) -> np.ndarray:
        """Several short query texts at once (1 torch thread; recent ones are remembered)."""
        import torch

        keyed = [(self.config.model, self.config.max_seq_length, t) for t in texts]
        todo = [k[2] for k in dict.fromkeys(keyed) if k not in _QUERY_VECS]
        if todo:
            n = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                vecs = embed(todo, self.config.max_seq_length, batch_size=len(todo), model=self.config.model)
            finally:
                torch.set_num_threads(n)
            if len(_QUERY_VECS) > 2000:
                _QUERY_VECS.clear()
            _QUERY_VECS.update(((self.config.model, self.config.max_seq_length, t), v) for t, v in zip(todo, vecs))
        return np.stack([_QUERY_VECS[k] for k in keyed]) if texts else np.zeros((0, 384), "float32")

    def dense_scores(self, text: str | None = None, vector: np.ndarray | None = None,
                     k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(record positions, cosine similarities), best first, from faiss."""
        v = self.query_vector(text or "") if vector is None else vector
        k = min(k or len(self.records), len(self.records))
        if k == 0:
            return np.zeros(0, dtype="int64"), np.zeros(0, dtype="float32")
        sims, ids = self.faiss.search(np.ascontiguousarray(v, dtype="float32").reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep], sims[0][keep]


def _fingerprint(paths: list[Path]) -> list[list]:
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def index_root(home: Path | str | None = None) -> Path:
    return Path(home or load_settings().home) / "index"


def index_dir(paths: list[Path], config: IndexConfig, home: Path | str | None = None) -> Path:
    ident = json.dumps([sorted(str(p.resolve()) for p in paths), config.key(), INDEX_VERSION])
    return index_root(home) / hashlib.sha256(ident.encode()).hexdigest()[:16]


def _resolve_paths(paths: Sequence[Path | str] | None, home: Path | str | None) -> list[Path]:
    from datatune_core.errors import UserError

    ps = [Path(p).expanduser() for p in (default_catalog_paths(home) if paths is None else paths)]
    missing = [str(p) for p in ps if not p.is_file()]
    if missing:
        raise UserError(f"Catalog file(s) not found: {', '.join(missing)}. Pass existing .jsonl/.jsonl.gz files.")
    if not ps:
        raise UserError("No dataset catalogs to search. Add a local dataset (`datatune catalog add FILE`) or pass "
                        "--catalog PATH.")
    return ps


def _embed_cached(texts: list[str], cache: EmbeddingCache, config: IndexConfig, report: Progress,
                  what: str) -> tuple[dict[str, np.ndarray], int, int]:
    """Vectors for `texts` (keyed by EmbeddingCache.key): from the cache, the shipped seed, else embedded now."""
    keys = [EmbeddingCache.key(t, config.max_seq_length, config.model) for t in texts]
    have = cache.get_many(sorted(set(keys)))
    wanted = set(keys) - set(have)
    seeded = {k: v for k, v in _seed_vectors().items() if k in wanted}
    if seeded:  # vectors shipped with the bundled catalog (same model, text and length -> same key)
        cache.put_many(seeded)
        have.update(seeded)
    # longest first, so each batch holds texts of similar length (less padding)
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in have}.items(), key=lambda kv: -len(kv[1]))
    total = len(todo)
    report(f"embedding {total} {what} ({len(set(keys)) - total} cached)", 0, total)
    step = 128
    for i in range(0, total, step):
        chunk = todo[i:i + step]
        vecs = embed([t for _, t in chunk], config.max_seq_length, model=config.model)
        new = {k: v for (k, _), v in zip(chunk, vecs)}
        cache.put_many(new)
        have.update(new)
        report(f"embedded {min(i + step, total)} of {total} {what}", min(i + step, total), total)
    return {k: have[k] for k in set(keys)}, total, len(seeded)


def _stack(texts: list[str], vecs: dict[str, np.ndarray], config: IndexConfig) -> np.ndarray:
    keys = [EmbeddingCache.key(t, config.max_seq_length, config.model) for t in texts]
    return np.stack([vecs[k] for k in keys]).astype("float32") if keys else np.zeros((0, 384), "float32")


def build_index(paths: Sequence[Path | str] | None = None, home: Path | str | None = None,
                config: IndexConfig | None = None, progress: Progress | None = None) -> SearchIndex:
    """(Re)build and persist the index for these catalogs; only records whose text changed are embedded."""
    import bm25s

    config = config or IndexConfig()
    ps = _resolve_paths(paths, home)
    fp = _fingerprint(ps)
    t0 = time.perf_counter()
    report = progress or (lambda msg, done, total: None)
    report("loading catalogs", 0, 1)
    loaded = load_catalogs(ps)
    records = loaded.records
    dense_docs = [doc_text(r, config.dense_fields) for r in records]
    sample_docs = [sample_text(r) for r in records]
    has_samples = np.array([bool(t) for t in sample_docs], dtype=bool)
    bm25_docs = [doc_text(r, config.bm25_fields) for r in records]
    cache = EmbeddingCache(index_root(home) / "embeddings.sqlite")
    try:
        vecs, total, n_seeded = _embed_cached(dense_docs, cache, config, report, "records")
        svecs, s_total, s_seeded = _embed_cached([t for t in sample_docs if t], cache, config, report,
                                                 "sample-row texts")
    finally:
        cache.close()
    gc.collect()  # free the batch activations now; small query encodes are slow while they linger
    emb = _stack(dense_docs, vecs, config)
    samp = np.zeros_like(emb)
    if has_samples.any():
        samp[has_samples] = _stack([t for t in sample_docs if t], svecs, config)
    report("building BM25", total, total)
    stemmer = _stemmer()
    bm25 = bm25s.BM25()
    if bm25_docs:
        bm25.index(_tokenize(bm25_docs, stemmer), show_progress=False)
    field_bm25: dict[str, object] = {}
    for name, fields in FIELD_GROUPS.items():
        toks = _tokenize([doc_text(r, fields) for r in records], stemmer)
        if any(toks):  # a field no record has (e.g. no tags anywhere) gets no index
            field_bm25[name] = bm25s.BM25()
            field_bm25[name].index(toks, show_progress=False)
    out = index_dir(ps, config, home)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "embeddings.npy", emb)
    np.save(tmp / "sample_embeddings.npy", samp)
    np.save(tmp / "has_samples.npy", has_samples)
    (tmp / "records.json").write_text(json.dumps(
        {"records": [r.to_dict() for r in records],
         "problems": [{"path": p.path, "line": p.line, "message": p.message} for p in loaded.problems]},
        ensure_ascii=False), encoding="utf-8")
    if bm25_docs:
        bm25.save(str(tmp / "bm25"), show_progress=False)  # JSON + .npy arrays, saved and loaded with allow_pickle=False
        for name, b in field_bm25.items():
            b.save(str(tmp / f"bm25_{name}"), show_progress=False)
    stats = {"n_records": len(records), "embedded": total + s_total, "cached": len(records) - total,
             "seeded": n_seeded + s_seeded, "build_s": round(time.perf_counter() - t0, 3),
             "problems": len(loaded.problems)}
    manifest = {"version": INDEX_VERSION, "fingerprint": fp, "config": config.key(), "model": EMBEDDERS[config.model][0],
                "built_at": time.time(), "stats": stats}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _swap_in(tmp, out)
    report("index ready", total, total)
    idx = SearchIndex(records, emb, bm25, config, path=out, problems=loaded.problems,
                      built_at=manifest["built_at"], stats=stats, field_bm25=field_bm25,
                      sample_embeddings=samp, has_samples=has_samples)
    _LOADED[str(out)] = (fp, idx)
    return idx


def _rmtree(d: Path) -> None:
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by the freshly written `tmp`; if another process swapped in at the same time, keep theirs."""
    old = out.with_name(out.name + f".old{os.getpid()}")
    try:
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except OSError:
        _rmtree(tmp)
    _rmtree(old)


_LOADED: dict[str, tuple[list, SearchIndex]] = {}


def load_index(paths: Sequence[Path | str] | None = None, home: Path | str | None = None,
               config: IndexConfig | None = None, progress: Progress | None = None) -> SearchIndex:
    """The index for these catalogs: from memory, else from disk, else (re)built when a catalog changed."""
    config = config or IndexConfig()
    ps = _resolve_paths(paths, home)
    fp = _fingerprint(ps)
    out = index_dir(ps, config, home)
    hit = _LOADED.get(str(out))
    if hit and hit[0] == fp:
        return hit[1]
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        try:
            m = json.loads(manifest_path.read_text(encoding="utf-8"))
            if m.get("fingerprint") == fp and m.get("version") == INDEX_VERSION:
                import bm25s

                data = json.loads((out / "records.json").read_text(encoding="utf-8"))
                records = [DatasetRecord.from_dict(d) for d in data["records"]]
                problems = [CatalogProblem(**d) for d in data["problems"]]
                bm25 = bm25s.BM25.load(str(out / "bm25"), show_progress=False) if (out / "bm25").is_dir() else bm25s.BM25()
                emb = np.load(out / "embeddings.npy", allow_pickle=False)
                field_bm25 = {name: bm25s.BM25.load(str(out / f"bm25_{name}"), show_progress=False)
                              for name in FIELD_GROUPS if (out / f"bm25_{name}").is_dir()}
                idx = SearchIndex(records, emb, bm25, config, path=out, problems=problems,
                                  built_at=m.get("built_at", 0.0), stats=m.get("stats", {}), field_bm25=field_bm25,
                                  sample_embeddings=np.load(out / "sample_embeddings.npy", allow_pickle=False),
                                  has_samples=np.load(out / "has_samples.npy", allow_pickle=False))
                _LOADED[str(out)] = (fp, idx)
                return idx
        except (OSError, ValueError, TypeError, EOFError, KeyError, AttributeError):
            pass  # unreadable index: rebuild below
    return build_index(ps, home, config, progress)


def index_status(paths: Sequence[Path | str] | None = None, home: Path | str | None = None,
                 config: IndexConfig | None = None) -> dict:
    """Whether the index for these catalogs is built and current, and its size."""
    config = config or IndexConfig()
    try:
        ps = _resolve_paths(paths, home)
    except Exception as e:  # no catalogs yet
        return {"state": "no-catalogs", "message": str(e), "catalogs": []}
    out = index_dir(ps, config, home)
    base = {"catalogs": [str(p) for p in ps], "path": str(out)}
    mp = out / "manifest.json"
    if not mp.is_file():
        return {**base, "state": "missing", "message": "Not built yet; it is built on the first search or with "
                                                       "`datatune catalog index`."}
    m = json.loads(mp.read_text(encoding="utf-8"))
    current = m.get("fingerprint") == _fingerprint(ps) and m.get("version") == INDEX_VERSION
    return {**base, "state": "ready" if current else "stale", "built_at": m.get("built_at"),
            "stats": m.get("stats", {}),
            "message": "Up to date." if current else "A catalog changed; the next search rebuilds it incrementally."}


if __name__ == "__main__":  # regenerate the shipped vector seed
    import sys

    print(write_vector_seed(sys.argv[1:] or [str(Path(__file__).resolve().parent.parent / "data" / "hf_catalog.jsonl.gz")]))
