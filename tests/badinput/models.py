"""Tiny models for the model-related bad inputs (built from configs, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path


def tiny(root: Path, name: str = "tiny-a", hidden: int = 32) -> Path:
    from tests.train.tiny import build_tiny_model_dir

    d = Path(root) / name
    if (d / "config.json").is_file():
        return d
    if hidden == 32:
        return build_tiny_model_dir(d)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.train.tiny import build_tokenizer

    tok = build_tokenizer(True)
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def adapter_for_other_base(root: Path) -> tuple[str, str]:
    """(base model A, a LoRA adapter made for base model B with other layer sizes)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    a, b = tiny(root), tiny(root, "tiny-b", hidden=48)
    out = Path(root) / "adapter-for-b"
    if not (out / "adapter_config.json").is_file():
        m = get_peft_model(AutoModelForCausalLM.from_pretrained(b),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        m.save_pretrained(out)
    return str(a), str(out)


def train_on(root: Path, rows: list[dict]) -> dict:
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.launch import train_rows

    cfg = LoraTrainConfig.from_preset("cpu-demo", model=str(tiny(root)), max_steps=2, batch_size=2, max_seq_len=64,
                                      target_modules="all-linear")
    return train_rows(rows, cfg, Path(root) / "run", instruction="Answer.")
