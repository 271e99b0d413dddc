"""The LLM difficulty judge: rating parsing, valid / malformed / out-of-range / failed replies, the confidence
interval, caching through the LLM layer, and the real Anthropic SDK against the scripted Messages-API server."""

from __future__ import annotations

import pytest

from datatune_core.quality.judge import JUDGE_RUBRIC, judge_difficulty, mean_ci, parse_rating
from datatune_core.llm import get_client
from datatune_core.llm.base import LLMError
from datatune_core.testing import ScriptedProvider
from datatune_core.quality.report import QualityConfig
from datatune_core.quality.profiling import profile
from tests.fakes.messages_server import MessagesServer


@pytest.mark.parametrize("reply,expected", [
    ("4", (4, "ok")), (" 2\n", (2, "ok")), ("Rating: 4/5", (4, "ok")), ("On a 1-5 scale: 3", (3, "ok")),
    ("four", (4, "ok")), ("Rating: Five.", (5, "ok")), ("This one is odd", (None, "malformed")), ("3.5", (4, "ok")), ({"rating": 5}, (5, "ok")), (1, (1, "ok")),
    ("0", (None, "out_of_range")), ("7", (None, "out_of_range")), ("-2", (None, "out_of_range")),
    ("10 out of 10", (None, "out_of_range")), ("", (None, "malformed")), ("hard to say", (None, "malformed")),
    ({"other": 3}, (None, "malformed")), (None, (None, "malformed")), (True, (None, "malformed")),
])
def test_parse_rating(reply, expected):
    assert parse_rating(reply) == expected


def test_mean_ci_hand_values():
    # mean 3.75, sd = sqrt(4.75 / 3) = 1.2583, t(0.975, 3) = 3.1824 -> half width 2.0022
    m, lo, hi = mean_ci([2, 4, 4, 5])
    assert m == 3.75 and lo == pytest.approx(1.7478, abs=1e-3) and hi == pytest.approx(5.7522, abs=1e-3)
    assert mean_ci([3]) == (3.0, None, None) and mean_ci([]) == (None, None, None)


def _body(req) -> str:
    return req.messages[-1]["content"]


REPLIES = {"alpha": "2", "beta": "4", "gamma": "4", "delta": "5", "eps": "I cannot rate this", "zeta": "9",
           "eta": "0"}


def responder(req):
    for key, reply in REPLIES.items():
        if f"Input:\n{key}" in _body(req):
            return reply
    raise LLMError("refused")  # anything else ("theta") fails: an ok=False result


def test_judge_counts_malformed_out_of_range_and_failed():
    prov = ScriptedProvider(responder)
    pairs = [(k, "out") for k in REPLIES] + [("theta", "out")]
    d = judge_difficulty(pairs, get_client(provider=prov), task="Classify things.")
    assert d.method == "judge" and d.n_sampled == 8
    assert (d.n_valid, d.n_malformed, d.n_out_of_range, d.n_failed) == (4, 1, 2, 1)
    assert d.histogram == {"1": 0, "2": 1, "3": 0, "4": 2, "5": 1}
    assert d.mean == 3.75 and d.ci_low == pytest.approx(1.7478, abs=1e-3)
    req = prov.calls[0]
    assert req.shared_prefix.startswith(JUDGE_RUBRIC) and "Classify things." in req.shared_prefix
    assert req.max_tokens <= 8 and req.temperature == 0.0 and req.stage == "quality"


def test_judge_with_no_valid_reply_explains():
    d = judge_difficulty([("eps", "x")], get_client(provider=ScriptedProvider(responder)))
    assert d.mean is None and d.n_malformed == 1 and "no valid rating" in d.note


def test_profile_judges_a_shared_sample_once_and_the_cache_answers_reruns(store):
    prov = ScriptedProvider(lambda req: "5" if "opera" in _body(req) else ("1" if "fire" in _body(req) else "3"))
    rows = [{"input": "Is fire hot?", "output": "yes", "source": "a"},
            {"input": "Is ice hot?", "output": "no", "source": "a"},
            {"input": "An opera question?", "output": "no", "source": "a"},
            {"input": "Is ice hot?", "output": "no", "source": "a"},
            {"input": "Is fire hot?", "output": "yes", "source": "synthetic"}]
    cfg = QualityConfig(embed=False, difficulty="judge", judge_sample=10)
    p = profile(rows, config=cfg, client=get_client(store, provider=prov))
    assert len(prov.calls) == 3  # 3 distinct (input, output) pairs across a, synthetic and the mix
    a = p.get("a").difficulty
    assert (a.n_valid, a.mean) == (4, 3.0)  # 1, 3, 5, 3
    assert p.get("synthetic").difficulty.mean == 1.0 and p.get("mix").difficulty.n_valid == 5
    assert p.get("mix").difficulty.model == "scripted:scripted"
    p2 = profile(rows, config=cfg, client=get_client(store, provider=prov))
    assert len(prov.calls) == 3 and p2.get("a").difficulty.mean == 3.0  # all from the LLM cache


def test_judge_sample_size_is_respected():
    prov = ScriptedProvider(lambda req: "3")
    rows = [{"input": f"question number {i}", "output": str(i)} for i in range(40)]
    p = profile(rows, config=QualityConfig(embed=False, difficulty="judge", judge_sample=7),
                client=get_client(provider=prov))
    assert len(prov.calls) == 7 and p.main.difficulty.n_sampled == 7 and p.main.difficulty.ci_low == 3.0


def test_judge_through_the_anthropic_sdk_against_the_scripted_server():
    from datatune_core.llm.anthropic_provider import AnthropicProvider

    def server_responder(req: dict) -> str:
        text = " ".join(b.get("text", "") if isinstance(b, dict) else str(b)
                        for m in req["messages"] for b in (m["content"] if isinstance(m["content"], list)
                                                           else [m["content"]]))
        if "Input:\nhard" in text:
            return "5"
        if "Input:\nodd" in text:
            return "Difficulty: 12"  # out of range
        if "Input:\nchatty" in text:
            return "This one is tricky to judge."  # malformed
        return "Rating: 2/5"

    with MessagesServer(responder=server_responder) as srv:
        prov = AnthropicProvider(api_key=srv.api_key, base_url=srv.url, timeout_s=10)
        pairs = [("hard", "x"), ("easy", "y"), ("easy too", "z"), ("odd", "w"), ("chatty", "v")]
        d = judge_difficulty(pairs, get_client(provider=prov), task="Answer questions.")
        # 5 ratings + one re-ask of the reply that held no rating (still none: it stays malformed)
        assert len(srv.billed()) == 6
    assert (d.n_valid, d.n_out_of_range, d.n_malformed, d.n_failed) == (3, 1, 1, 0)
    assert d.mean == pytest.approx(3.0) and d.histogram["2"] == 2 and d.histogram["5"] == 1
    assert d.model.startswith("anthropic")


def test_evaluation_rows_never_reach_the_llm_judge(mini_bench):
    prov = ScriptedProvider(lambda req: "3")
    rows = [{"input": "Is ice hot?", "output": "no"}, {"input": "Is tea hot?", "output": "yes"}]
    p = profile(rows, config=QualityConfig(embed=False, difficulty="judge"), eval_task=mini_bench,
                client=get_client(provider=prov))
    sent = " ".join(_body(r) for r in prov.calls)
    assert len(prov.calls) == 2 and "fish" not in sent and "fire" not in sent  # no test input of the unit
    assert p.main.difficulty.mean == 3.0 and p.eval_source.difficulty is None
