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

import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.training.config import LoraTrainConfig
from datatune_core.training.data import PreparedData, collate


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
