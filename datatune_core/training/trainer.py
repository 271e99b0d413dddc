"""LoRA / QLoRA fine-tuning of a causal LM on the curated rows, as a resumable background job.

In: `LoraTrainConfig` (presets "cpu-demo" and "paper") + rows ({"input", "output"}) from a project (kept/edited rows)
or a JSONL/JSON/CSV/Parquet file. Out: a LoRA adapter folder (+ `datatune_training.json`: base model, instruction,
prompt style, hashes of the training inputs for the evaluation leakage guard), step metrics in the store.

- Rows are formatted exactly as evaluation scores test inputs (`prompting.PromptFormat`: the task instruction and
  its few-shot demonstrations, choices shown as the scorer shows them; the chat template when there is one); the
  loss covers only the answer tokens, and the end-of-turn/EOS tokens are appended to every answer and
  learned (both were bugs in prompt2model). Optional packing; a seeded train/validation split.
- Paper defaults (r 8, alpha 16, lr 1e-4, 3 epochs, AdamW); optional grid lr x alpha keeping the run with the
  lowest validation loss seen at any point (its best adapter is the output).
- QLoRA (4-bit NF4, bf16 compute) when CUDA and bitsandbytes are present; more than one visible GPU -> the job
  re-launches itself with `accelerate launch` (one process per GPU, data-parallel).
- Leakage (`leakage.py`): a set with rows that copy, contain or nearly copy a test input of an evaluation unit or
  of an uploaded test file, or that come from the unit's task family, is refused with the rows and why; rows
  that copy or contain the project's held-out test rows are dropped. The project's test set (`testset.py`) is made
  and frozen when training first starts and its rows never enter training (`project_training_rows`).
- Job kind "train": units are checkpoints; cancel saves a checkpoint, resume continues from the last one at the
  next step with the same data order, optimizer and scheduler state.

    >>> from datatune_core.training.trainer import LoraTrainConfig, train_rows
    >>> cfg = LoraTrainConfig.from_preset("cpu-demo", max_steps=20)
    >>> out = train_rows(rows, cfg, "runs/demo", instruction="Answer the question.")   # ~1 min on CPU
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.transformation.mix import read_rows_file  # noqa: F401
from datatune_core.models import TRAINING_META, TRAINING_ROWS  # noqa: F401

PRESETS: dict[str, dict[str, Any]] = {
    # the DataTune paper: QLoRA, r 8, alpha 16, lr 1e-4, 3 epochs, AdamW (grid lr {5e-5,1e-4} x alpha {16,24})
    "paper": {"r": 8, "lora_alpha": 16, "learning_rate": 1e-4, "epochs": 3.0, "batch_size": 8, "max_seq_len": 1024,
              "target_modules": "all-linear", "eval_every": 50, "save_every": 100, "qlora": "auto"},
    # a quick run that finishes in about a minute on 2 CPU cores with the 135M demo model
    # (512 tokens: the prompt carries the instruction and the few-shot demonstrations, as evaluation shows them)
    "cpu-demo": {"r": 8, "lora_alpha": 16, "learning_rate": 1e-3, "epochs": 1.0, "batch_size": 4, "max_seq_len": 512,
                 "max_rows": 256, "max_steps": 40, "target_modules": ["q_proj", "v_proj"], "eval_every": 10,
                 "save_every": 20, "qlora": "off"},
}


@dataclass
class LoraTrainConfig:
    """One training run (or a grid of runs). Every field has a default; presets override some of them."""

    model: str | None = None  # local HF folder, .gguf file, Hub id (online only); None = SmolLM2-135M-Instruct
    preset: str = "paper"
    r: int = 8  # LoRA rank
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    learning_rate: float = 1e-4
    epochs: float = 3.0
    batch_size: int = 8  # per device, per micro-batch
    grad_accum: int = 1
    max_seq_len: int = 1024  # longer prompts are cut from the left; answers longer than half of this are dropped
    max_steps: int | None = None  # stop earlier than `epochs` (optimizer steps)
    max_rows: int | None = None  # use at most this many rows (seeded sample)
    val_fraction: float = 0.1
    packing: bool = False  # concatenate whole examples up to max_seq_len
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # gradient clipping (0 = off), as the transformers Trainer default
    qlora: str = "auto"  # auto (4-bit on CUDA with bitsandbytes) | on | off
    grid: bool = False  # try every grid_lrs x grid_alphas, keep the lowest validation loss
    grid_lrs: list[float] = field(default_factory=lambda: [5e-5, 1e-4])
    grid_alphas: list[int] = field(default_factory=lambda: [16, 24])
    eval_every: int = 50
    save_every: int = 100
    keep_checkpoints: int = 2
    prompt_style: str = "auto"  # chat template when the tokenizer has one, else plain
    instruction: str = ""  # the task instruction (a project's own instruction wins)
    seed: int = 0
    output_dir: str | None = None  # default: DATATUNE_HOME/runs/job-<id>
    eval_tasks: list[str] = field(default_factory=list)  # BIG-bench units whose test inputs are removed from training
    data_file: str | None = None  # rows from a file instead of the project
    launch_config: str | None = None  # an `accelerate config` file: multi-GPU, multi-node, FSDP or DeepSpeed ZeRO

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UserError(f"Unknown preset {self.preset!r}; use one of {', '.join(PRESETS)}.")
        if self.r < 1 or self.lora_alpha < 1:
            raise UserError("LoRA r and alpha must be at least 1.")
        if not 0 < self.learning_rate < 1:
            raise UserError(f"learning_rate {self.learning_rate} is out of range (0, 1).")
        if self.epochs <= 0 or self.batch_size < 1 or self.grad_accum < 1 or self.max_seq_len < 8:
            raise UserError("epochs must be > 0, batch_size and grad_accum >= 1, max_seq_len >= 8.")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError("max_steps must be at least 1.")
        if not 0 <= self.val_fraction < 1:
            raise UserError("val_fraction must be in [0, 1).")
        if self.qlora not in ("auto", "on", "off"):
            raise UserError("qlora must be auto, on or off.")
        if self.grid and (not self.grid_lrs or not self.grid_alphas):
            raise UserError("A grid needs at least one learning rate and one alpha.")
        if self.max_grad_norm < 0:
            raise UserError("max_grad_norm must be >= 0 (0 turns clipping off).")
        if self.eval_every < 1 or self.save_every < 1 or self.keep_checkpoints < 1:
            raise UserError("eval_every, save_every and keep_checkpoints must be at least 1.")
        if self.launch_config and not Path(self.launch_config).expanduser().is_file():
            raise UserError(f"Accelerate config file {self.launch_config} does not exist; write one with "
                            "`accelerate config --config_file FILE`, or leave it empty for one process per GPU.")

    @classmethod
    def from_preset(cls, name: str = "cpu-demo", **overrides: Any) -> "LoraTrainConfig":
        if name not in PRESETS:
            raise UserError(f"Unknown preset {name!r}; use one of {', '.join(PRESETS)}.")
        vals = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(preset=name, **vals)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LoraTrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        return cls(**d)

    def combos(self) -> list[tuple[float, int]]:
        if not self.grid:
            return [(self.learning_rate, self.lora_alpha)]
        return [(lr, a) for lr in self.grid_lrs for a in self.grid_alphas]


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


def tokenize_row(tok: Any, instruction: str, inp: str, out: str, style: str, max_len: int,
                 fmt: Any = None) -> dict | None:
    """input_ids + labels (-100 on the prompt); answer + end-of-turn/EOS are the only supervised tokens. The prompt
    is `fmt`'s (a `prompting.PromptFormat`; default: the instruction without demonstrations)."""
    from datatune_core.evaluation.prompting import PromptFormat

    fmt = fmt or PromptFormat(instruction, [], style)
    p = fmt.ids(tok, fmt.text(tok, inp))
    a = fmt.answer_ids(tok, out) + fmt.end_ids(tok)
    if len(a) > max_len // 2:
        return None
    if len(p) + len(a) > max_len:
        p = p[len(p) + len(a) - max_len:]
    return {"input_ids": p + a, "labels": [-100] * len(p) + a}


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
    feats, dropped = [], 0
    for part in (train_rows_, val_rows):
        fs = []
        for r in part:
            f = tokenize_row(tok, instruction, r["input"], r["output"], style, cfg.max_seq_len, fmt)
            if f is None:
                dropped += 1
            else:
                fs.append(f)
        feats.append(fs)
    train, val = feats
    if not train:
        raise UserError(f"All rows are too long for max_seq_len={cfg.max_seq_len}; raise it.")
    if cfg.packing:
        train = pack(train, cfg.max_seq_len)
    stats = {"rows": n_in, "empty": n_empty, "leaked_removed": n_leak, "too_long": dropped, "train": len(train_rows_),
             "val": len(val_rows), "train_sequences": len(train), "prompt_style": style,
             "train_tokens": sum(len(f["input_ids"]) for f in train)}
    warning = few_rows_warning(len(rows))
    if warning:
        stats["warnings"] = [warning]
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


# ----------------------------------------------------------------------------- model
def use_qlora(cfg: LoraTrainConfig) -> bool:
    import importlib.util

    import torch

    ok = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    if cfg.qlora == "on" and not ok:
        raise UserError("QLoRA needs a CUDA GPU and bitsandbytes (`pip install 'datatune-studio[gpu]'`); "
                        "use --qlora off for plain LoRA.")
    return cfg.qlora == "on" or (cfg.qlora == "auto" and ok)


def lora_model(cfg: LoraTrainConfig, alpha: int, base: Any = None, tok: Any = None) -> tuple[Any, Any]:
    """The base model (loaded unless given) wrapped with a fresh LoRA adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    from datatune_core.models import load_causal_lm

    q = use_qlora(cfg)
    if base is None:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"  # one GPU per process under accelerate
        base, tok = load_causal_lm(cfg.model, quantize_4bit=q, device=device,
                                   device_map={"": local} if q else None)
    if q:
        from peft import prepare_model_for_kbit_training

        # non-reentrant checkpointing works with DDP (reentrant checkpointing marks LoRA weights ready twice)
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=True,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(cfg.seed)
    lcfg = LoraConfig(r=cfg.r, lora_alpha=alpha, lora_dropout=cfg.lora_dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=cfg.target_modules)
    return get_peft_model(base, lcfg), tok


# ----------------------------------------------------------------------------- the training loop
def rank_micro_batch_indices(n_micro: int, step_in_epoch: int, grad_accum: int, world: int, rank: int) -> list[int]:
    """The micro-batches one process runs in one optimizer step: dealt round-robin, always `grad_accum` of them.

    With several processes and fewer micro-batches than processes x grad_accum the deal wraps around (as `DistributedSampler` pads), so
    every rank calls backward the same number of times and data-parallel gradient syncs cannot wait forever.
    """
    if n_micro < 1:
        return []
    js = [(step_in_epoch * grad_accum + a) * world + rank for a in range(grad_accum)]
    if world == 1:  # one process: the epoch's last step may be shorter (nothing to keep in step with)
        return [j for j in js if j < n_micro]
    return [j % n_micro for j in js]


@dataclass
class TrainOutcome:
    step: int
    total_steps: int
    stopped: bool
    best_val_loss: float | None
    last_loss: float | None
    best_dir: str | None
    last_checkpoint: str | None


def _memory_mb(device: Any) -> float:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


class LoraTrainer:
    """A small AdamW loop over pre-tokenised features with checkpoints that resume bit-for-bit on CPU.

    Callbacks: `on_metric(step, dict)`, `on_checkpoint(step, path, val_loss)`, `should_stop(step) -> bool`.
    """

    def __init__(self, model: Any, tok: Any, data: PreparedData, cfg: LoraTrainConfig, out_dir: str | Path, *,
                 learning_rate: float | None = None, on_metric: Callable | None = None,
                 on_checkpoint: Callable | None = None, should_stop: Callable | None = None):
        from accelerate import Accelerator

        import torch

        self.cfg, self.tok, self.data = cfg, tok, data
        self.out = Path(out_dir)
        self.lr = learning_rate or cfg.learning_rate
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        self.acc = Accelerator(mixed_precision="bf16" if bf16 else "no")
        params = [p for p in model.parameters() if p.requires_grad]
        self._params = params
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=cfg.weight_decay)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        n_micro = math.ceil(len(data.train) / cfg.batch_size)
        per_step = cfg.grad_accum * self.world
        self.steps_per_epoch = max(1, n_micro // per_step if self.world > 1 else math.ceil(n_micro / per_step))
        total = math.ceil(cfg.epochs * self.steps_per_epoch)
        self.total = min(total, cfg.max_steps) if cfg.max_steps else total
        from transformers import get_linear_schedule_with_warmup

        sched = get_linear_schedule_with_warmup(opt, cfg.warmup_steps, self.total)
        # the scheduler is stepped by hand once per optimizer step (accelerate would step it once per process)
        self.model, self.opt = self.acc.prepare(model, opt)
        self.sched = sched
        self.on_metric, self.on_checkpoint, self.should_stop = on_metric, on_checkpoint, should_stop
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.best_val: float | None = None

    # -- data order: a seeded permutation per epoch, micro-batches dealt round-robin to processes
    def _micro_batches(self, epoch: int) -> list[list[int]]:
        import torch

        g = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch)
        order = torch.randperm(len(self.data.train), generator=g).tolist()
        bs = self.cfg.batch_size
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def _batch(self, idx: list[int], feats: list[dict]) -> dict:
        return {k: v.to(self.acc.device) for k, v in collate([feats[i] for i in idx], self.pad).items()}

    def validation_loss(self) -> float | None:
        import torch

        if not self.data.val:
            return None
        self.model.eval()
        tot = torch.zeros(2, device=self.acc.device)
        mine = list(range(self.rank, len(self.data.val), self.world))
        # the unwrapped model: a DDP forward may sync buffers, and ranks can hold different numbers of val batches
        net = self.acc.unwrap_model(self.model)
        with torch.no_grad():
            for i in range(0, len(mine), self.cfg.batch_size):
                b = self._batch(mine[i:i + self.cfg.batch_size], self.data.val)
                n = (b["labels"][:, 1:] != -100).sum()
                tot += torch.stack([net(**b).loss.float() * n, n.float()])
        tot = self.acc.reduce(tot, reduction="sum")
        self.model.train()
        return float(tot[0] / tot[1]) if tot[1] > 0 else None

    def save_checkpoint(self, step: int) -> Path:
        import torch

        path = self.out / f"ckpt-{step:08d}"
        if self.acc.is_main_process:
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self.acc.unwrap_model(self.model).save_pretrained(tmp)
            torch.save({"step": step, "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                        "best_val": self.best_val, "torch_rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
            old = sorted(self.out.glob("ckpt-*[0-9]"))[: -self.cfg.keep_checkpoints]
            for o in old:
                shutil.rmtree(o, ignore_errors=True)
        self.acc.wait_for_everyone()
        return path

    def load_checkpoint(self, path: str | Path) -> int:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        path = Path(path)
        set_peft_model_state_dict(self.acc.unwrap_model(self.model), load_file(str(path / "adapter_model.safetensors")))
        st = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)  # tensors/numbers only
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.best_val = st.get("best_val")
        torch.set_rng_state(st["torch_rng"])
        return int(st["step"])

    def _stop_requested(self, step: int) -> bool:
        import torch

        flag = torch.tensor([1 if (self.should_stop and self.acc.is_main_process and self.should_stop(step)) else 0],
                            device=self.acc.device)
        if self.world > 1:
            from accelerate.utils import broadcast

            flag = broadcast(flag, 0)
        return bool(flag.item())

    def train(self, resume_from: str | Path | None = None) -> TrainOutcome:
        import contextlib

        step = self.load_checkpoint(resume_from) if resume_from else 0
        self.out.mkdir(parents=True, exist_ok=True)
        self.model.train()
        t_start, tokens, last_loss, last_ckpt = time.perf_counter(), 0, None, str(resume_from) if resume_from else None
        steps_done = 0
        epoch_cache: tuple[int, list] = (-1, [])
        while step < self.total:
            if self._stop_requested(step):
                last_ckpt = str(self.save_checkpoint(step))
                if self.on_checkpoint and self.acc.is_main_process:
                    self.on_checkpoint(step, last_ckpt, None)
                return TrainOutcome(step, self.total, True, self.best_val, last_loss, self._best_dir(), last_ckpt)
            epoch, k = divmod(step, self.steps_per_epoch)
            if epoch_cache[0] != epoch:
                epoch_cache = (epoch, self._micro_batches(epoch))
            micro = epoch_cache[1]
            mine = [micro[j] for j in rank_micro_batch_indices(len(micro), k, self.cfg.grad_accum, self.world,
                                                               self.rank)]
            loss_sum = 0.0
            for a, idx in enumerate(mine):
                b = self._batch(idx, self.data.train)
                sync = a == len(mine) - 1
                ctx = contextlib.nullcontext() if sync or self.world == 1 else self.acc.no_sync(self.model)
                with ctx:
                    loss = self.model(**b).loss / len(mine)
                    self.acc.backward(loss)
                loss_sum += float(loss.detach())
                tokens += int(b["attention_mask"].sum()) * self.world
                del b, loss  # free this micro-batch (and its graph's last references) before the next is built
            if self.cfg.max_grad_norm > 0:
                self.acc.clip_grad_norm_(self._params, self.cfg.max_grad_norm)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)
            step += 1
            steps_done += 1
            last_loss = loss_sum
            elapsed = time.perf_counter() - t_start
            m: dict[str, Any] = {"epoch": step / self.steps_per_epoch, "loss": last_loss,
                                 "lr": self.sched.get_last_lr()[0], "tokens_per_s": tokens / max(elapsed, 1e-9),
                                 "mem_mb": _memory_mb(self.acc.device),
                                 "eta_s": elapsed / steps_done * (self.total - step)}
            if step % self.cfg.eval_every == 0 or step == self.total:
                m["val_loss"] = self.validation_loss()
                if m["val_loss"] is not None and (self.best_val is None or m["val_loss"] < self.best_val):
                    self.best_val = m["val_loss"]
                    if self.acc.is_main_process:
                        best = self.out / "best"
                        shutil.rmtree(best, ignore_errors=True)
                        self.acc.unwrap_model(self.model).save_pretrained(best)
            if self.on_metric and self.acc.is_main_process:
                self.on_metric(step, m)
            if step % self.cfg.save_every == 0 or step == self.total:
                last_ckpt = str(self.save_checkpoint(step))
                if self.on_checkpoint and self.acc.is_main_process:
                    self.on_checkpoint(step, last_ckpt, m.get("val_loss"))
        return TrainOutcome(step, self.total, False, self.best_val, last_loss, self._best_dir(), last_ckpt)

    def _best_dir(self) -> str | None:
        b = self.out / "best"
        return str(b) if b.is_dir() else None


# ----------------------------------------------------------------------------- one-call API and the job


def write_adapter(src: str | Path, dest: str | Path, meta: dict, rows: list[dict] | None = None) -> Path:
    """Copy an adapter folder to `dest` and add `datatune_training.json` (+ its training rows, gzipped JSONL)."""
    import gzip

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("trainer_state.pt"))
    (tmp / TRAINING_META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    if rows is not None:
        with gzip.open(tmp / TRAINING_ROWS, "wt", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def train_rows(rows: list[dict], cfg: LoraTrainConfig, out_dir: str | Path, instruction: str = "", *,
               fmt: Any = None, **cb: Any) -> dict:
    """Train in this process (no store, no grid); returns a summary with the adapter path. `fmt`: the
    `prompting.PromptFormat` the rows are shown in (default: the instruction without demonstrations)."""
    model, tok = lora_model(cfg, cfg.lora_alpha)
    data = prepare_data(tok, rows, cfg, instruction or cfg.instruction, fmt=fmt)
    tr = LoraTrainer(model, tok, data, cfg, Path(out_dir) / "g0", **cb)
    res = tr.train()
    src = res.best_dir or res.last_checkpoint
    adapter = write_adapter(src, Path(out_dir) / "adapter", _meta(cfg, instruction, data, res), data.rows)
    return {"adapter": str(adapter), **asdict(res), "stats": data.stats}


def _meta(cfg: LoraTrainConfig, instruction: str, data: PreparedData, res: TrainOutcome, **extra: Any) -> dict:
    from datatune_core.models import model_label

    return {"base_model": cfg.model, "base_model_label": model_label(cfg.model), "instruction": instruction,
            "prompt_style": data.stats["prompt_style"], "config": cfg.to_dict(), "stats": data.stats,
            "best_val_loss": res.best_val_loss, "steps": res.step, "eval_tasks": cfg.eval_tasks,
            "train_input_hashes": data.train_input_hashes,
            "prompt_format": data.fmt.to_dict() if data.fmt is not None else None, **extra}


def start_training(store: Any, project_id: int | None, config: LoraTrainConfig | dict) -> int:
    """Start job kind "train" in its own process; returns the job id."""
    from datatune_core import jobs

    cfg = config if isinstance(config, LoraTrainConfig) else LoraTrainConfig.from_dict(config)
    if project_id is None and not cfg.data_file:
        raise UserError("Training needs a project (--project) or a data file (--data FILE).")
    return jobs.start_job(store, "train", cfg.to_dict(), project_id=project_id)


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def accelerate_argv(job_id: int, n_gpus: int, config_file: str | None = None) -> list[str]:
    """The multi-process launch, each process running `python -m datatune_core.training.trainer JOB_ID`: one per GPU, or
    what an accelerate config file says (processes, machines, FSDP/DeepSpeed)."""
    head = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        return [*head, "--config_file", str(Path(config_file).expanduser()), "-m", "datatune_core.training.trainer", str(job_id)]
    return [*head, "--multi_gpu", "--num_processes", str(n_gpus), "--num_machines", "1", "-m", "datatune_core.training.trainer",
            str(job_id)]


def run_train_job(ctx: Any) -> dict:
    """Job kind "train" (see the module docstring). Re-launches itself under accelerate with >1 GPU."""
    from datatune_core.jobs import JobCancelled

    n = _gpu_count()
    launch_cfg = (ctx.config or {}).get("launch_config")
    if (n > 1 or launch_cfg) and "LOCAL_RANK" not in os.environ:
        ctx.log(f"launching with accelerate config {launch_cfg}" if launch_cfg else
                f"{n} GPUs visible: launching {n} processes with accelerate")
        env = dict(os.environ, DATATUNE_HOME=str(ctx.store.home))
        rc = subprocess.run(accelerate_argv(ctx.job_id, n, launch_cfg), env=env, check=False).returncode
        if ctx.cancelled:
            raise JobCancelled()
        if rc != 0:
            raise RuntimeError(f"accelerate launch exited with status {rc}; see the job log.")
        return ctx.store.get_job(ctx.job_id).result or _final(ctx)
    return _train_job(ctx)


def _final(ctx: Any) -> dict:
    res = ctx.store.unit_results(ctx.job_id)
    return res.get("final") or {}


def _train_job(ctx: Any) -> dict:
    from datatune_core.jobs import JobCancelled
    from datatune_core.models import load_tokenizer

    cfg = LoraTrainConfig.from_dict(ctx.config)
    store = ctx.store
    main = int(os.environ.get("RANK", "0")) == 0
    out = Path(cfg.output_dir) if cfg.output_dir else store.home / "runs" / f"job-{ctx.job_id}"
    instruction = cfg.instruction
    test_set, n_test, fmt, version_rows = None, 0, None, None
    tok = load_tokenizer(cfg.model)
    if ctx.project_id is not None and not cfg.data_file:
        from datatune_core.text import text_hash
        from datatune_core.evaluation.prompting import format_for_project

        rows, test_set, n_test = project_training_rows(store, ctx.project_id)
        version_rows = project_rows(store, ctx.project_id)  # the curated version (test rows included) for quality
        project = store.get_project(ctx.project_id)
        instruction = project.instruction or instruction
        unit = (cfg.eval_tasks or [project.eval_task or ""])[0]
        if unit:  # rows for a BIG-bench unit: shown as that unit's test inputs are scored (its two demos)
            from datatune_core.benchmark.bigbench import load_unit
            from datatune_core.evaluation.prompting import PromptFormat

            fmt = PromptFormat.for_unit(load_unit(unit), cfg.prompt_style)
        else:  # the format the project's test set is scored in: its instruction + examples that are not test rows
            fmt = format_for_project(project, style=cfg.prompt_style,
                                     exclude_inputs={text_hash(t) for t in (test_set.inputs() if test_set else [])})
    elif cfg.data_file:
        rows = read_rows_file(cfg.data_file)
        if cfg.eval_tasks:  # rows for a BIG-bench unit: shown as that unit's test inputs are scored
            from datatune_core.benchmark.bigbench import load_unit
            from datatune_core.evaluation.prompting import PromptFormat

            fmt = PromptFormat.for_unit(load_unit(cfg.eval_tasks[0]), cfg.prompt_style)
    else:
        raise UserError("Training needs a project or a data file.")
    data = prepare_data(tok, rows, cfg, instruction, fmt=fmt, test_set=test_set)
    data.stats["test_rows_withheld"] = n_test
    done = store.unit_results(ctx.job_id)
    if main and "data" not in done:
        ctx.log(f"data: {json.dumps(data.stats)}")
        if n_test:
            ctx.log(f"{n_test} curated rows are the project's test set ({test_set.name}) and are not trained on")
        if data.stats["leaked_removed"]:
            ctx.log(f"removed {data.stats['leaked_removed']} rows that copy held-out test rows",
                    level="warning")
        for w in data.stats.get("warnings", []):
            ctx.log(w, level="warning")
        ctx.commit("data", data.stats)
    combos = cfg.combos()
    results = []
    for gi, (lr, alpha) in enumerate(combos):
        key = f"g{gi}"
        if f"{key}:done" in done:
            results.append(done[f"{key}:done"])
            continue
        run_id = (done.get(f"{key}:start") or {}).get("run_id")
        if run_id is None and main:
            from datatune_core.quality.profiling import dataset_version  # content hash of the curated rows: links the run to its profile

            run_id = store.create_training_run(ctx.project_id, {**cfg.to_dict(), "learning_rate": lr,
                                                                "lora_alpha": alpha, "grid_index": gi},
                                               job_id=ctx.job_id, output_dir=str(out / key),
                                               dataset_version=dataset_version(version_rows or rows))
            ctx.commit(f"{key}:start", {"run_id": run_id})
        ckpts = sorted((k for k in done if k.startswith(f"{key}:ckpt:")), key=lambda k: int(k.rsplit(":", 1)[1]))
        resume = next((done[k]["path"] for k in reversed(ckpts) if Path(done[k]["path"]).is_dir()), None)
        if main:
            store.update_training_run(run_id, status="running")
        model, _ = lora_model(cfg, alpha)

        offset = sum(int(r.get("steps") or 0) for r in results)  # steps of the grid's earlier runs

        def on_metric(step: int, m: dict, run_id: int = run_id, offset: int = offset) -> None:
            store.add_metric(run_id, step, **m)
            ctx.progress(f"run {gi + 1}/{len(combos)} step {step}: loss {m['loss']:.4f}", done=offset + step)

        def on_ckpt(step: int, path: str, val: float | None, key: str = key) -> None:
            store.commit_unit(ctx.job_id, f"{key}:ckpt:{step}", {"step": step, "path": path, "val_loss": val})

        tr = LoraTrainer(model, tok, data, cfg, out / key, learning_rate=lr, on_metric=on_metric,
                         on_checkpoint=on_ckpt, should_stop=lambda step: ctx.cancelled)
        if main:
            ctx.set_total(tr.total * len(combos))
            ctx.log(f"run {gi + 1}/{len(combos)}: lr {lr}, alpha {alpha}, {tr.total} steps"
                    + (f", resuming from {resume}" if resume else ""))
        res = tr.train(resume_from=resume)
        if res.stopped:
            if main:
                store.update_training_run(run_id, status="stopped", best_val_loss=res.best_val_loss)
            raise JobCancelled()
        summary = {"run_id": run_id, "lr": lr, "alpha": alpha, "best_val_loss": res.best_val_loss,
                   "last_loss": res.last_loss, "best_dir": res.best_dir or res.last_checkpoint, "steps": res.step}
        if main:
            store.update_training_run(run_id, status="done", best_val_loss=res.best_val_loss, finished_at=time.time())
            ctx.commit(f"{key}:done", summary)
        results.append(summary)
        del model, tr
    if not main:
        return {}

    def rank(s: dict) -> float:
        v = s["best_val_loss"] if s["best_val_loss"] is not None else s["last_loss"]
        return float("inf") if v is None else v

    best = min(results, key=rank)
    res_obj = TrainOutcome(best["steps"], best["steps"], False, best["best_val_loss"], best["last_loss"],
                           best["best_dir"], None)
    adapter = write_adapter(best["best_dir"], out / "adapter",
                            _meta(cfg, instruction, data, res_obj, grid=results, job_id=ctx.job_id,
                                  run_id=best["run_id"]), data.rows)
    store.add_artifact(ctx.project_id, "adapter", str(adapter), {"run_id": best["run_id"], "job_id": ctx.job_id,
                                                                 "best_val_loss": best["best_val_loss"]})
    final = {"adapter": str(adapter), "best_run_id": best["run_id"], "runs": results, "stats": data.stats,
             "warnings": list(data.stats.get("warnings", []))}
    ctx.commit("final", final)
    # unit commits (data, checkpoints, runs) also bump progress_done; show optimizer steps, as during training
    ctx.progress("finished", done=sum(int(r.get("steps") or 0) for r in results))
    return final


def main(argv: list[str] | None = None) -> int:
    """Entry point of each process under `accelerate launch`: train the given job's runs."""
    from datatune_core.jobs import JobCancelled, JobContext
    from datatune_core.store import Store

    args = argv if argv is not None else sys.argv[1:]
    store = Store.open(os.environ.get("DATATUNE_HOME"))
    ctx = JobContext(store=store, job=store.get_job(int(args[0])))
    try:
        _train_job(ctx)
    except JobCancelled:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
