"""Training data: the project's curated rows minus its test set, the leakage refusal, tokenized and packed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datatune_core.errors import UserError
from datatune_core.training.config import LoraTrainConfig


# ----------------------------------------------------------------------------- data
def project_rows(store: Any, project_id: int) -> list[dict]:
    """The project's curated rows (kept + edited; the project's source mix when one is set, see mix.py), with
    their row id and source dataset (for the leakage guard's family check)."""
    from datatune_core.transformation.mix import curated_rows

    rows = curated_rows(store, project_id)
    return [{"input": r.input or "", "output": r.output or "", "id": r.id, "dataset_id": r.dataset_id}
            for r in rows]


def project_training_rows(store: Any, project_id: int) -> tuple[list[dict], Any, int]:
    """(rows to train on, the project's frozen test set, how many curated rows it withholds): the curated rows
    minus the test set's rows, right after `mix.curated_rows`. The test set is made and frozen here when missing."""
    from datatune_core.evaluation.testset import ensure_test_set, without_test_rows

    rows = project_rows(store, project_id)
    ts = ensure_test_set(store, project_id)
    kept, n = without_test_rows(rows, ts)
    return kept, ts, n


def filter_leakage(rows: list[dict], eval_tasks: list[str], *, refuse_texts: list[str] | tuple = (),
                   drop_texts: list[str] | tuple = ()) -> tuple[list[dict], int]:
    """Refuse (LeakageError naming the rows and why) a set with rows leaking an evaluation unit (its family, or
    an exact, contained or near copy of a test input) or `refuse_texts` (an uploaded test set); drop the rows that
    copy or contain `drop_texts` (held-out rows of the same pool). Returns (kept rows, how many were dropped)."""
    from datatune_core.leakage import LeakageError, LeakIndex, find_leaks, leak_message

    leaks = find_leaks(rows, units=list(eval_tasks or []), test_texts=list(refuse_texts),
                       test_name="the uploaded test set")
    if leaks:
        raise LeakageError(leak_message(leaks, rows), leaks)
    if not drop_texts:
        return rows, 0
    # held-out rows come from the same pool: exact and contained copies go; near copies stay (templated sources
    # make many near-identical rows, and dropping them emptied whole training sets)
    bad = {lk.row for lk in LeakIndex(list(drop_texts), name="the held-out test rows", threshold=1.01).find(rows)}
    return [r for i, r in enumerate(rows) if i not in bad], len(bad)


MIN_INPUT_TOKENS = 16  # a row whose input would keep fewer tokens than this after the prompt head is dropped


def prompt_head_ids(tok: Any, fmt: Any) -> list[int]:
    """The token ids every prompt of `fmt` starts with (chat header, instruction, demonstrations)."""
    head = fmt.prefix_text(tok)
    return fmt.ids(tok, head) if head else []


def tokenize_row(tok: Any, instruction: str, inp: str, out: str, style: str, max_len: int,
                 fmt: Any = None, head: list[int] | None = None) -> dict | None:
    """input_ids + labels (-100 on the prompt); answer + end-of-turn/EOS are the only supervised tokens. The prompt
    is `fmt`'s (a `prompting.PromptFormat`; default: the instruction without demonstrations).

    A row longer than `max_len` keeps the prompt's head whole (`head`, default `prompt_head_ids`: what every test
    prompt of the format starts with) and the end of its own part (the question and its choices); the start of
    its input is cut and the result says `truncated`. None when the answer takes over half of `max_len` or the
    head leaves fewer than MIN_INPUT_TOKENS for the input."""
    from datatune_core.evaluation.prompting import PromptFormat

    fmt = fmt or PromptFormat(instruction, [], style)
    p = fmt.ids(tok, fmt.text(tok, inp))
    a = fmt.answer_ids(tok, out) + fmt.end_ids(tok)
    if len(a) > max_len // 2:
        return None
    truncated = len(p) + len(a) > max_len
    if truncated:
        head = prompt_head_ids(tok, fmt) if head is None else head
        keep = 0
        while keep < min(len(head), len(p)) and head[keep] == p[keep]:
            keep += 1
        room = max_len - len(a) - keep
        if room < MIN_INPUT_TOKENS:
            return None
        p = p[:keep] + p[len(p) - room:]
    return {"input_ids": p + a, "labels": [-100] * len(p) + a, "truncated": truncated}


def pack(features: list[dict], max_len: int) -> list[dict]:
    """Concatenate whole examples (in order) into sequences of at most max_len tokens."""
    out: list[dict] = []
    cur: dict = {"input_ids": [], "labels": []}
    for f in features:
        if cur["input_ids"] and len(cur["input_ids"]) + len(f["input_ids"]) > max_len:
            out.append(cur)
            cur = {"input_ids": [], "labels": []}
        cur["input_ids"] = cur["input_ids"] + f["input_ids"]
        cur["labels"] = cur["labels"] + f["labels"]
    if cur["input_ids"]:
        out.append(cur)
    return out


@dataclass
class PreparedData:
    train: list[dict]
    val: list[dict]
    stats: dict
    train_input_hashes: list[str]
    rows: list[dict] = field(default_factory=list)  # the rows trained on (train + validation), for later checks
    fmt: Any = None  # the prompting.PromptFormat of every row


MIN_ROWS_FOR_VAL = 10  # below this, no validation split (smoke runs still train, with a warning)


def few_rows_warning(n_rows: int) -> str | None:
    """The warning shown (job log, job result, CLI) when a training set is too small for a validation split."""
    if n_rows >= MIN_ROWS_FOR_VAL:
        return None
    return (f"Only {n_rows} training row{'s' if n_rows != 1 else ''}: no validation split; expect overfitting "
            "\u2014 aim for a few hundred rows.")


def truncation_warning(n_cut: int, n_rows: int, max_len: int) -> str | None:
    """The warning shown when rows were too long to be trained on whole."""
    if not n_cut:
        return None
    return (f"{n_cut} of {n_rows} training rows were longer than max_seq_len={max_len} tokens: the start of their "
            "input was cut (the instruction and demonstrations are kept whole). Raise max_seq_len to train on "
            "them as they are scored.")


def prepare_data(tok: Any, rows: list[dict], cfg: LoraTrainConfig, instruction: str, *, fmt: Any = None,
                 test_set: Any = None) -> PreparedData:
    """Leakage check, seeded shuffle / split, tokenization in `fmt` (default: `instruction`, no demonstrations)."""
    import random

    from datatune_core.text import text_hash
    from datatune_core.models import resolve_style
    from datatune_core.evaluation.prompting import PromptFormat

    style = resolve_style(tok, cfg.prompt_style)
    fmt = fmt or PromptFormat(instruction, [], style)
    n_in = len(rows)
    rows = [r for r in rows if str(r.get("input", "")).strip() and str(r.get("output", "")).strip()]
    n_empty = n_in - len(rows)
    upload = test_set is not None and test_set.source == "upload"
    rows, n_leak = filter_leakage(rows, cfg.eval_tasks, refuse_texts=test_set.inputs() if upload else (),
                                  drop_texts=test_set.inputs() if test_set is not None and not upload else ())
    rows = list(rows)
    random.Random(cfg.seed).shuffle(rows)
    if cfg.max_rows:
        rows = rows[: cfg.max_rows]
    if not rows:
        raise UserError("No training rows: keep or edit some rows on the Review page (or pass --data FILE with "
                        "'input' and 'output' columns).")
    n_val = int(round(len(rows) * cfg.val_fraction)) if len(rows) >= MIN_ROWS_FOR_VAL else 0
    val_rows, train_rows_ = rows[:n_val], rows[n_val:]
    feats, dropped, cut = [], 0, 0
    head = prompt_head_ids(tok, fmt)
    for part in (train_rows_, val_rows):
        fs = []
        for r in part:
            f = tokenize_row(tok, instruction, r["input"], r["output"], style, cfg.max_seq_len, fmt, head)
            if f is None:
                dropped += 1
            else:
                cut += f.pop("truncated")
                fs.append(f)
        feats.append(fs)
    train, val = feats
    if not train:
        raise UserError(f"All rows are too long for max_seq_len={cfg.max_seq_len}: every prompt starts with "
                        f"{len(head)} tokens of instruction and demonstrations. Raise max_seq_len to at least "
                        f"{len(head) + 128}.")
    if cfg.packing:
        train = pack(train, cfg.max_seq_len)
    stats = {"rows": n_in, "empty": n_empty, "leaked_removed": n_leak, "too_long": dropped, "train": len(train_rows_),
             "val": len(val_rows), "train_sequences": len(train), "prompt_style": style,
             "train_tokens": sum(len(f["input_ids"]) for f in train), "truncated": cut,
             "prompt_head_tokens": len(head)}
    warnings = [w for w in (few_rows_warning(len(rows)), truncation_warning(cut, len(rows), cfg.max_seq_len))
                if w]
    if warnings:
        stats["warnings"] = warnings
    return PreparedData(train, val, stats, sorted({text_hash(r["input"]) for r in train_rows_ + val_rows}),
                        rows=[{k: r.get(k) for k in ("input", "output", "id", "dataset_id")}
                              for r in train_rows_ + val_rows], fmt=fmt)


def collate(batch: list[dict], pad_id: int) -> dict:
    import torch

    width = max(len(f["input_ids"]) for f in batch)
    ids = [f["input_ids"] + [pad_id] * (width - len(f["input_ids"])) for f in batch]
    labels = [f["labels"] + [-100] * (width - len(f["labels"])) for f in batch]
    mask = [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in batch]
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}
