"""What a training run is: `LoraTrainConfig` (LoRA/QLoRA hyper-parameters, data limits, output) and its presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError


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
