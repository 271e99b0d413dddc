"""Try it: base and tuned answers from one loaded model, in the training prompt format, streamed; `datatune chat`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datatune_core.exporting.chat import ChatSession, side_by_side
from datatune_core.errors import UserError
from datatune_core.exporting.model import greedy_answers, load_merged
from datatune_core.models import build_prompt, load_causal_lm
from datatune_core.training.launch import train_rows

from .conftest import color_rows
from .test_train import tiny_cfg


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("chat-adapter")
    return train_rows(color_rows(3), tiny_cfg(tiny_model, max_steps=12), out, instruction="Name the color.")["adapter"]


def test_streamed_answers_are_the_base_and_the_tuned_greedy_answers(adapter, tiny_model):
    s = ChatSession(adapter, device="cpu")
    text = "Tell me the color of a frog."
    assert s.prompt(text) == build_prompt(s.tok, "Name the color.", [], text, "auto")  # the project's format
    pieces = list(s.stream(text, "tuned", 12))
    assert len(pieces) >= 1
    answers = side_by_side(s, text, 12)
    assert answers["tuned"] == "".join(pieces).strip()
    merged, tok, meta = load_merged(adapter)
    assert answers["tuned"] == tok.decode(greedy_answers(merged, tok, meta, [text], 12)[0],
                                          skip_special_tokens=True).strip()
    base, btok = load_causal_lm(str(tiny_model), device="cpu")
    assert answers["base"] == btok.decode(greedy_answers(base, btok, meta, [text], 12)[0],
                                          skip_special_tokens=True).strip()
    # the adapter is back on after the base answer
    assert s.answer(text, "tuned", 12) == answers["tuned"]
    with pytest.raises(UserError, match="prompt"):
        list(s.stream("  ", "tuned"))


def test_cli_chat_prompt_json_and_stdin(adapter):
    from datatune_core.cli import app

    r = CliRunner().invoke(app, ["chat", "--adapter", adapter, "--prompt", "Tell me the color of a frog.", "--json",
                                 "--max-new-tokens", "8"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) >= {"base", "tuned", "prompt"} and out["instruction"] == "Name the color."
    r2 = CliRunner().invoke(app, ["chat", "--adapter", adapter, "--only", "tuned", "--max-new-tokens", "8"],
                            input="Tell me the color of a frog.\n\n")
    assert r2.exit_code == 0, r2.output
    assert "[tuned] " + out["tuned"] in r2.stdout and "[base]" not in r2.stdout
