"""Difficulty of training examples: an LLM judge (1-5 rubric) or, without an LLM, a base model's loss on the output.

Both return a `Difficulty` summary (mean with a 95 % confidence interval, histogram, per-example values) for a
sample of (input, output) pairs; `quality.profile` calls them once per source over a shared sample so a
pair is never rated twice.

* `judge_difficulty(pairs, client, task=...)` sends one request per pair through the LLM layer
  (`client.bulk`, so calls are batched, cached and budgeted there) and parses each reply with
  `parse_rating`: malformed replies (no number) and out-of-range ratings (outside 1-5) are counted and
  left out, never guessed.
* `loss_difficulty(pairs, model, tokenizer)` is the offline proxy: the mean per-token cross-entropy of the
  output given the input under a small causal LM, prompted exactly as training will prompt it (higher =
  harder for the base model).

CPU example (a scripted stand-in for the LLM):

    >>> from datatune_core.llm import get_client
    >>> from datatune_core.testing import ScriptedProvider
    >>> d = judge_difficulty([("2+2?", "4")], get_client(provider=ScriptedProvider(lambda r: "2")))
    >>> d.mean, d.histogram
    (2.0, {'1': 0, '2': 1, '3': 0, '4': 0, '5': 0})
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

JUDGE_RUBRIC = """You rate how difficult a training example is: how hard it is to produce the given output from the \
given input correctly. Use this 1-5 scale:
1 = trivial: the answer is stated in or copied from the input; anyone gets it right.
2 = easy: one obvious step or common knowledge; very few people would get it wrong.
3 = moderate: several steps, careful reading or some domain knowledge; a careless person could get it wrong.
4 = hard: multi-step reasoning or specialised knowledge; many non-experts would get it wrong.
5 = very hard: most non-experts would make a mistake; even experts need care.
Rate the difficulty of the task the example poses, not the quality of its writing, and do not solve it at length.
Reply with a single digit from 1 to 5 and nothing else."""

RATING_KEYS = ("1", "2", "3", "4", "5")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SCALE = re.compile(r"\b1\s*(?:-|–|to)\s*5\b|(?:/|out of)\s*5\b", re.IGNORECASE)
_WORD_ONLY = re.compile(r"^(?:(?:rating|difficulty|score)\s*(?:is|:|=)?\s*)?(one|two|three|four|five)$")
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
MAX_FIELD_CHARS = 4000


@dataclass
class Difficulty:
    """Difficulty of a sample: `method` "judge" (1-5 ratings) or "loss" (nats per output token)."""

    method: str
    n_sampled: int = 0
    n_valid: int = 0
    n_malformed: int = 0
    n_out_of_range: int = 0
    n_failed: int = 0
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    histogram: dict[str, int] | None = None  # judge only: rating -> count
    values: list[float] = field(default_factory=list)
    model: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Difficulty | None":
        if not d:
            return None
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """Mean and its Student-t confidence interval; (mean, None, None) for a single value, Nones for none."""
    n = len(values)
    if n == 0:
        return None, None, None
    m = float(sum(values) / n)
    if n == 1:
        return m, None, None
    from scipy.special import stdtrit  # Student-t quantile (lighter than importing scipy.stats)

    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = float(stdtrit(n - 1, 0.5 + level / 2)) * sd / math.sqrt(n)
    return m, m - half, m + half


def parse_rating(reply: Any) -> tuple[int | None, str]:
    """A judge reply -> (rating, status) with status "ok" | "malformed" | "out_of_range".

    Takes the first number in the text ("4", "Rating: 4/5", "On a 1-5 scale: 4"), else a reply that is just a
    number word ("four", "Rating: four"; a "one" inside prose does not count), or a dict
    with a "rating"/"difficulty"/"score" key. Decimals inside 1-5 are rounded half up (3.5 -> 4).
    """
    if isinstance(reply, dict):
        for key in ("rating", "difficulty", "score"):
            if key in reply:
                reply = reply[key]
                break
        else:
            return None, "malformed"
    if isinstance(reply, bool) or reply is None:
        return None, "malformed"
    if isinstance(reply, (int, float)):
        value = float(reply)
    else:
        text = _SCALE.sub(" ", str(reply).strip())  # "on a 1-5 scale", "4/5", "4 out of 5"
        m = _NUMBER.search(text)
        if m:
            value = float(m.group(0))
        else:
            word = _WORD_ONLY.match(text.casefold().strip(" .!\n\t\"'*"))  # "four", "Rating: four" - not prose
            if not word:
                return None, "malformed"
            value = float(_WORDS[word.group(1)])
    if math.isnan(value) or value < 1 or value > 5:
        return None, "out_of_range"
    return int(math.floor(value + 0.5)), "ok"


Rated = tuple[float | None, str]  # (value, status) with status "ok" | "malformed" | "out_of_range" | "failed"


def summarise(method: str, items: Sequence[Rated], model: str = "", note: str = "") -> Difficulty:
    """A `Difficulty` from per-example (value, status) pairs; only "ok" values enter the mean and CI."""
    values = [float(v) for v, st in items if st == "ok" and v is not None]
    m, lo, hi = mean_ci(values)
    d = Difficulty(method=method, n_sampled=len(items), n_valid=len(values), mean=m, ci_low=lo, ci_high=hi,
                   n_malformed=sum(1 for _, st in items if st == "malformed"),
                   n_out_of_range=sum(1 for _, st in items if st == "out_of_range"),
                   n_failed=sum(1 for _, st in items if st == "failed"),
                   values=[round(v, 4) for v in values], model=model, note=note)
    if method == "judge":
        d.histogram = {k: sum(1 for v in values if int(v) == int(k)) for k in RATING_KEYS}
    return d


def _clip(s: str) -> str:
    s = s or ""
    return s if len(s) <= MAX_FIELD_CHARS else s[:MAX_FIELD_CHARS] + " […]"


def judge_requests(pairs: Sequence[tuple[str, str]], task: str | None = None, role: str = "cheap") -> list:
    """One `LLMRequest` per (input, output) pair; the rubric and task are the shared, cacheable prefix."""
    from datatune_core.llm.base import LLMRequest

    prefix = JUDGE_RUBRIC + (f"\n\nThe examples are training data for this task:\n{_clip(task)}" if task else "")
    reqs = []
    for i, (inp, out) in enumerate(pairs):
        body = f"Input:\n{_clip(inp)}\n\nOutput:\n{_clip(out)}\n\nDifficulty rating (1-5):"
        key = hashlib.sha1(f"{inp}\x00{out}".encode()).hexdigest()[:16]
        reqs.append(LLMRequest(messages=[{"role": "user", "content": body}], shared_prefix=prefix,
                               system="You are a careful data-quality judge.", max_tokens=8, temperature=0.0,
                               role=role, stage="quality", unit_key=f"judge:{key}", metadata={"judge_index": i}))
    return reqs


def rate_pairs(pairs: Sequence[tuple[str, str]], client: Any, task: str | None = None,
               concurrency: int | None = None, role: str = "cheap") -> tuple[list[Rated], str]:
    """Ask the judge about every pair (through `client.bulk`); returns per-pair (rating, status) and the model."""
    reqs = judge_requests(pairs, task=task, role=role)
    if not reqs:
        return [], ""
    by_id = {id(r): i for i, r in enumerate(reqs)}
    items: list[Rated] = [(None, "failed")] * len(reqs)
    bad_text: dict[int, str] = {}
    model = ""
    for res in client.bulk(reqs, concurrency=concurrency):
        i = by_id.get(id(res.request))
        if i is None:
            i = int((getattr(res.request, "metadata", None) or {}).get("judge_index", -1))
        if not 0 <= i < len(reqs):
            continue
        model = model or ":".join(x for x in (res.provider, res.model) if x)
        if not res.ok:
            items[i] = (None, "failed")
            continue
        reply = res.parsed if res.parsed is not None else res.text
        if hasattr(reply, "model_dump"):
            reply = reply.model_dump()
        value, status = parse_rating(reply)
        items[i] = (float(value) if value is not None else None, status)
        if status == "malformed":
            bad_text[i] = res.text or ""
    if bad_text:
        # One re-ask for replies that held no rating (e.g. cut off): a different request, so nothing is billed
        # twice; a reply that is still not a rating stays "malformed".
        again = [reask_request(reqs[i], bad_text[i], i) for i in sorted(bad_text)]
        for res in client.bulk(again, concurrency=concurrency):
            i = int((getattr(res.request, "metadata", None) or {}).get("judge_index", -1))
            if not 0 <= i < len(reqs) or not res.ok:
                continue
            reply = res.parsed if res.parsed is not None else res.text
            value, status = parse_rating(reply)
            if status != "malformed":
                items[i] = (float(value) if value is not None else None, status)
    return items, model


def reask_request(req: Any, bad: str, index: int) -> Any:
    """The follow-up turn asking for just the rating after a reply that held none."""
    from datatune_core.llm.base import LLMRequest

    msgs = list(req.messages) + [{"role": "assistant", "content": (bad or "(no answer)")[:200]},
                                 {"role": "user", "content": "Reply with only one digit from 1 to 5."}]
    return LLMRequest(messages=msgs, shared_prefix=req.shared_prefix, system=req.system, max_tokens=8,
                      temperature=0.0, role=req.role, stage=req.stage, unit_key=f"{req.unit_key}:reask",
                      metadata={"judge_index": index, "reask": True})


def judge_difficulty(pairs: Sequence[tuple[str, str]], client: Any, task: str | None = None,
                     concurrency: int | None = None, role: str = "cheap") -> Difficulty:
    """Rate each pair 1-5 with the LLM judge; malformed, out-of-range and failed replies are counted, not used."""
    items, model = rate_pairs(pairs, client, task=task, concurrency=concurrency, role=role)
    d = summarise("judge", items, model=model)
    if items and not d.n_valid:
        d.note = "no valid rating: check the LLM provider (`datatune llm status`) or use the loss proxy"
    return d


# ----------------------------------------------------------------------------- local proxy: base-model loss
def default_proxy_model(name: str | None = None) -> tuple[Any, Any, str]:
    """(model, tokenizer, label) of the base model used by the loss proxy, via `models.load_causal_lm`:
    `name` (a local model folder or .gguf), else `DATATUNE_PROXY_MODEL`, else the embedded SmolLM2-135M."""
    import os

    from datatune_core.models import load_causal_lm, model_label

    name = name or os.environ.get("DATATUNE_PROXY_MODEL") or None
    model, tok = load_causal_lm(name, device="cpu")
    return model, tok, model_label(name)


def output_losses(pairs: Sequence[tuple[str, str]], model: Any, tokenizer: Any, instruction: str = "",
                  batch_size: int = 8, max_length: int = 384, max_output_tokens: int = 128) -> list[float | None]:
    """Per-example mean cross-entropy (nats/token) of the output tokens, with the prompt built exactly as for
    training (`models.build_prompt`: the chat template when the tokenizer has one, else "Input:/Output:").

    The prompt is cut from the left when prompt + output would exceed `max_length`; an empty output gives None.
    """
    import torch

    from datatune_core.models import build_prompt, encode_answer, prompt_ids, resolve_style

    style = resolve_style(tokenizer, "auto")
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    encoded = []
    for inp, out in pairs:
        p = prompt_ids(tokenizer, build_prompt(tokenizer, instruction, [], inp, style), style)
        o = encode_answer(tokenizer, out, style)[:max_output_tokens] if (out or "").strip() else []
        p = p[-max(1, max_length - len(o)):]
        encoded.append((p, o))
    losses: list[float | None] = [None] * len(pairs)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = [i for i in order[b:b + batch_size] if encoded[i][1]]
            if not idx:
                continue
            width = max(len(encoded[i][0]) + len(encoded[i][1]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            att = torch.zeros((len(idx), width), dtype=torch.long)
            lab = torch.full((len(idx), width), -100, dtype=torch.long)
            for r, i in enumerate(idx):
                p, o = encoded[i]
                seq = p + o
                ids[r, :len(seq)] = torch.tensor(seq)
                att[r, :len(seq)] = 1
                lab[r, len(p):len(seq)] = torch.tensor(o)
            logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float().cpu()
            shift_logits, shift_labels = logits[:, :-1], lab[:, 1:]
            tok_loss = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels,
                                                         ignore_index=-100, reduction="none")
            mask = (shift_labels != -100).float()
            per_row = (tok_loss * mask).sum(1) / mask.sum(1).clamp(min=1)
            for r, i in enumerate(idx):
                losses[i] = float(per_row[r])
    return losses


LOSS_NOTE = "mean cross-entropy of the output tokens under the base model (nats/token; higher = harder)"


def loss_values(pairs: Sequence[tuple[str, str]], model: Any = None, tokenizer: Any = None,
                batch_size: int = 8, model_name: str | None = None, instruction: str = "") -> tuple[list[Rated], str]:
    """Per-pair (loss, status) under the proxy model and its label. Without `model`/`tokenizer` it loads
    `model_name` (a local folder or .gguf; default: the embedded SmolLM2) with `default_proxy_model`."""
    name = model_name or (type(model).__name__ if model is not None else "")
    if model is None or tokenizer is None:
        model, tokenizer, name = default_proxy_model(model_name)
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    losses = output_losses(pairs, model, tokenizer, instruction=instruction, batch_size=batch_size)
    return [(v, "ok") if v is not None else (None, "malformed") for v in losses], name


def loss_difficulty(pairs: Sequence[tuple[str, str]], model: Any = None, tokenizer: Any = None,
                    batch_size: int = 8, instruction: str = "") -> Difficulty:
    """The offline difficulty proxy: the base model's per-token loss on each output (empty outputs: malformed)."""
    items, name = loss_values(pairs, model, tokenizer, batch_size=batch_size, instruction=instruction)
    return summarise("loss", items, model=name, note=LOSS_NOTE)
