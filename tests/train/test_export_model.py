"""Model export on a tiny Llama: merge + GGUF round trip (greedy answers equal), Modelfile, atomic writes on a
simulated failure, the CLI, and 4-bit loading of a .gguf going through a safetensors copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatune_core.errors import UserError
from datatune_core.exporting.model import export_gguf, export_merged, load_merged, modelfile_text
from datatune_core.training.launch import train_rows

from .conftest import color_rows
from .test_train import tiny_cfg

PROMPTS = ["Tell me the color of a banana.", "Tell me the color of a frog.", "What color is the sky?"]


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp-adapter")
    return train_rows(color_rows(2), tiny_cfg(tiny_model, max_steps=6), out, instruction="Name the color.")["adapter"]


def test_merged_folder_matches_base_plus_adapter(adapter, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = []
    res = export_merged(adapter, tmp_path / "merged", prompts=PROMPTS, progress=lambda d, t, w: steps.append(d))
    out = Path(res["path"])
    assert res["check"]["agreement"] == 1.0 and steps == [1, 2, 3, 4]
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    card = (out / "README.md").read_text()
    assert "merged" in card and "Name the color." in card and "3 equal" in card
    assert json.loads((out / "datatune_training.json").read_text())["instruction"] == "Name the color."
    # the saved folder computes the same logits as the in-memory merge
    merged, mtok, _ = load_merged(adapter)
    ids = torch.tensor([mtok("<|im_start|>user\nred<|im_end|>\n")["input_ids"]])
    again = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    assert torch.allclose(merged(ids).logits, again(ids).logits, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_gguf_round_trip_greedy_answers_equal(adapter, tmp_path, outtype):
    import torch
    from transformers import AutoModelForCausalLM

    done = []
    res = export_gguf(adapter, tmp_path / "gguf", outtype=outtype, prompts=PROMPTS,
                      progress=lambda d, t, w: done.append((d, t)))
    gguf = Path(res["gguf"])
    assert gguf.is_file() and gguf.name.endswith(f".{outtype}.gguf")
    assert done and done[-1][0] == done[-1][1]  # the progress bar reached the end
    chk = res["check"]
    assert chk["agreement"] == 1.0 and chk["tokenizer_equal"] and chk["gguf"]["general.architecture"] == "llama"
    # logits of the GGUF loaded back are within the type's rounding of the merged model's
    merged, tok, _ = load_merged(adapter)
    back = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = torch.tensor([tok("<|im_start|>user\nTell me the color of a banana.<|im_end|>\n")["input_ids"]])
    diff = (merged(ids).logits - back(ids).logits).abs().max().item()
    assert diff < (1e-5 if outtype == "f32" else 5e-2)
    mf = Path(res["modelfile"]).read_text()
    assert mf.startswith(f"FROM ./{gguf.name}\n") and "{{ .Prompt }}" in mf and 'PARAMETER stop "<|im_end|>"' in mf
    assert "Name the color." in mf  # the project's instruction is part of the template, as in training
    assert "ollama create" in (gguf.parent / "README.md").read_text()


def test_modelfile_template_renders_the_training_prompt(adapter):
    from datatune_core.exporting.model import prompt_for

    merged, tok, meta = load_merged(adapter)
    mf = modelfile_text(tok, meta, "m.gguf")
    template = mf.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    rendered = template.replace("{{ .Prompt }}", "a frog").split("{{ .Response }}")[0]
    assert rendered == prompt_for(tok, meta, "a frog")


def test_failure_midway_leaves_nothing_and_keeps_the_old_export(adapter, tmp_path):
    dest = tmp_path / "gguf"
    first = export_gguf(adapter, dest, outtype="f32", prompts=PROMPTS[:1])
    before, names = Path(first["gguf"]).read_bytes(), sorted(p.name for p in dest.iterdir())

    class DiskFull(OSError):
        pass

    def fail_at_third(done, total, what):
        if done == 3:
            raise DiskFull("No space left on device (simulated)")

    with pytest.raises(DiskFull):
        export_gguf(adapter, dest, outtype="f16", prompts=PROMPTS[:1], progress=fail_at_third)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gguf"]  # no partial or staging folder
    assert sorted(p.name for p in dest.iterdir()) == names and Path(first["gguf"]).read_bytes() == before
    assert not list(dest.glob("*.f16.gguf"))
    with pytest.raises(UserError, match="not a LoRA adapter"):
        export_merged(tmp_path, tmp_path / "m2")
    assert not (tmp_path / "m2").exists()


def test_cli_export_model(adapter, tmp_path):
    from typer.testing import CliRunner

    from datatune_core.cli import app

    r = CliRunner().invoke(app, ["export", "model", "--adapter", adapter, "--format", "gguf", "--gguf-type", "f32",
                                 "--root", str(tmp_path), "--dest", "tuned", "--prompt", PROMPTS[0]])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(res["gguf"]).is_file() and res["check"]["agreement"] == 1.0
    bad = CliRunner().invoke(app, ["export", "model", "--adapter", adapter, "--format", "onnx", "--root",
                                   str(tmp_path)])
    assert bad.exit_code != 0 and "merged or gguf" in str(bad.exception)


def test_4bit_loading_of_a_gguf_converts_it_to_safetensors_first(adapter, tmp_path, monkeypatch):
    from safetensors import safe_open

    from datatune_core.models import quantizable_location

    monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
    g = Path(export_gguf(adapter, tmp_path / "g", outtype="f32", prompts=PROMPTS[:1])["gguf"])
    loc = Path(quantizable_location(str(g)))
    assert loc.is_dir() and (loc / "config.json").is_file()
    cfg = json.loads((loc / "config.json").read_text())
    assert "quantization_config" not in cfg  # plain weights: bitsandbytes quantises them on load
    with safe_open(str(loc / "model.safetensors"), framework="pt") as st:
        assert any(k.endswith("q_proj.weight") for k in st.keys())
    assert quantizable_location(str(g)) == str(loc)  # converted once
    assert quantizable_location(str(tmp_path)) == str(tmp_path)  # folders are used as they are
