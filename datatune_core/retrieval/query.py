"""Query understanding for dataset search: what the user's task text and examples say about the data wanted.

In: a task instruction, its examples (input/output) or a plain search text. Out: a `ParsedQuery` with the text
for keyword search (boilerplate and filler removed: the keyphrases of a long description), the text for the
dense encoder, the examples as text, the language the task is written in, the languages it names, and the task
kind guessed from the examples (classification with its label space, multiple choice, generation...).

    >>> q = parse_query("Classify the sentiment of a review.", [{"input": "Great film", "output": "positive"}])
    >>> q.language, q.kind, q.labels
    ('en', 'classification', ['positive'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Words of a research-need or task description that say nothing about the data ("I want to train a model that").
_FILLER = re.compile(
    r"\b(i|we|you|our|my|us|want|wants|would|like|need|needs|needed|to|train|training|trained|build|building|"
    r"create|make|develop|model|models|system|tool|app|application|dataset|datasets|data|corpus|task|tasks|"
    r"given|please|should|must|can|could|able|that|which|a|an|the|for|of|it|is|are|be|this|these|some|will|"
    r"automatic|automatically|way)\b", re.I)
_ARROW = re.compile(r"^(.*?)\s*(?:->|=>|→)\s*(.+)$")

_STOP = {  # the most frequent function words of a few languages, for a language guess without a model
    "en": "the and is are of to in that it for with as was on be this you not have what does which or how".split(),
    "de": "der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es wie oder".split(),
    "fr": "le la les et est des une un du que pas pour dans en qui sur au avec ce il elle ou".split(),
    "es": "el la los las y es de que en un una por con para se del al lo como pero su".split(),
    "it": "il lo la gli le e è di che un una per con non del della sono come".split(),
    "pt": "o a os as e é de que em um uma para com não do da no na por se".split(),
    "nl": "de het een en is van dat niet op te zijn met voor er maar ook als".split(),
}
_SCRIPTS = [("ru", "\u0400", "\u04ff"), ("ar", "\u0600", "\u06ff"), ("hi", "\u0900", "\u097f"),
            ("zh", "\u4e00", "\u9fff"), ("ja", "\u3040", "\u30ff"), ("ko", "\uac00", "\ud7af"),
            ("el", "\u0370", "\u03ff"), ("he", "\u0590", "\u05ff"), ("th", "\u0e00", "\u0e7f")]
LANGUAGE_NAMES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "russian": "ru", "arabic": "ar", "hindi": "hi", "chinese": "zh", "japanese": "ja",
    "korean": "ko", "greek": "el", "hebrew": "he", "thai": "th", "turkish": "tr", "polish": "pl",
    "czech": "cs", "swedish": "sv", "danish": "da", "finnish": "fi", "norwegian": "no", "vietnamese": "vi",
    "indonesian": "id", "swahili": "sw", "persian": "fa", "urdu": "ur", "bengali": "bn", "tamil": "ta",
    "romanian": "ro", "hungarian": "hu", "ukrainian": "uk", "catalan": "ca", "bulgarian": "bg",
    "yoruba": "yo", "hausa": "ha", "igbo": "ig", "malay": "ms", "filipino": "tl", "kannada": "kn"}
_MULTI = re.compile(r"\b(multilingual|cross-?lingual|many languages|any language|translat\w*)\b", re.I)
_CHOICE = re.compile(r"(\(\s?[a-eA-E1-5]\s?\)|\b[a-eA-E]\)|\boptions?\b|\bchoices?\b)")

# Task kinds and the catalog tags that mark them (Hub task_categories / task_ids, BIG-bench keywords).
KIND_TAGS = {
    "classification": ("classification", "sentiment", "natural language inference", "intent", "detection",
                       "acceptability", "fact checking", "multi class", "multi label", "topic"),
    "multiple-choice": ("multiple choice", "multiple-choice", "question answering"),
    "extraction": ("token classification", "named entity", "extractive qa", "span", "part of speech"),
    "generation": ("summarization", "text generation", "translation", "text2text", "conversational",
                   "question answering", "paraphrase", "simplification", "code generation"),
}


@dataclass
class ParsedQuery:
    text: str  # everything the user gave, as one string
    instruction: str
    examples: list[dict] = field(default_factory=list)
    keywords: str = ""  # the text for BM25 (filler removed)
    dense_text: str = ""  # the text for the dense encoder (instruction + example inputs)
    examples_text: str = ""  # the examples as "input -> output" lines ("" when none)
    language: str = "en"  # the language the task is written in (ISO 639-1 guess)
    named_languages: set[str] = field(default_factory=set)  # languages the task names ("into German")
    multilingual: bool = False
    kind: str | None = None  # classification | multiple-choice | extraction | generation (from the examples)
    labels: list[str] = field(default_factory=list)  # the outputs when they form a closed label space

    def wants_language(self, code: str) -> bool:
        """True when records in language `code` suit this task (its own language, a named one, or any)."""
        return self.multilingual or code == self.language or code in self.named_languages


def guess_language(text: str) -> str:
    """ISO 639-1 code of the main language of `text` (script first, then function words; default 'en')."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "en"
    for code, lo, hi in _SCRIPTS:
        if sum(lo <= ch <= hi for ch in letters) / len(letters) > 0.3:
            return code
    words = re.findall(r"[a-zà-ÿßäöü]+", text.lower())
    if not words:
        return "en"
    counts = {lang: sum(w in set(sw) for w in words) for lang, sw in _STOP.items()}
    best = max(counts, key=lambda k: (counts[k], k == "en"))
    return best if counts[best] > counts["en"] else "en"


_LABELLED = re.compile(r"^(input|output|q|a|question|answer|text|label)\s*:\s*(.*)$", re.I)


def _split_examples(text: str) -> tuple[str, list[dict]]:
    """A search text with its examples inline split apart: "input -> output" lines (the Task page's search text)
    or "Input: ..." / "Output: ..." line pairs."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    inst, examples = [], []
    pending: str | None = None
    for ln in lines:
        m, lab = _ARROW.match(ln), _LABELLED.match(ln)
        if lab and lab.group(1).lower() in ("input", "q", "question", "text"):
            pending = lab.group(2)
        elif lab and pending is not None:
            examples.append({"input": pending, "output": lab.group(2)})
            pending = None
        elif m and inst:
            examples.append({"input": m.group(1), "output": m.group(2)})
        elif not examples and pending is None:
            inst.append(ln)
    return " ".join(inst), examples


def infer_kind(examples: list[dict]) -> tuple[str | None, list[str]]:
    """Task kind and closed label space from the examples: short answers drawn from a small set ->
    classification (or multiple choice when the inputs list options); long answers -> generation."""
    outs = [str(e.get("output") or "").strip() for e in examples if str(e.get("output") or "").strip()]
    if not outs:
        return None, []
    short = all(len(o.split()) <= 3 for o in outs)
    if short and any(_CHOICE.search(str(e.get("input") or "")) for e in examples):
        return "multiple-choice", []
    if short and len({o.lower() for o in outs}) <= max(3, len(outs)):
        labels = list(dict.fromkeys(outs))
        if all(not re.fullmatch(r"-?[\d.,]+", o) for o in outs):
            return "classification", labels
        return "generation", []
    ins = [str(e.get("input") or "") for e in examples]
    if all(o.lower() in i.lower() for o, i in zip(outs, ins) if o):
        return "extraction", []
    return "generation", []


def parse_query(instruction: str, examples: list[dict] | None = None) -> ParsedQuery:
    """Read a task (instruction + examples) or a plain search text (examples may follow as "a -> b" lines)."""
    instruction = (instruction or "").strip()
    examples = [e for e in examples or [] if str(e.get("input") or e.get("output") or "").strip()]
    if not examples and "\n" in instruction:
        instruction, examples = _split_examples(instruction)
    ex_lines = [f"{' '.join(str(e.get('input') or '').split())[:300]} -> "
                f"{' '.join(str(e.get('output') or '').split())[:150]}" for e in examples[:3]]
    text = "\n".join([instruction, *ex_lines]).strip()
    keywords = " ".join(_FILLER.sub(" ", instruction).split())
    ex_inputs = " ".join(str(e.get("input") or "")[:200] for e in examples[:3])
    low = text.lower()
    named = {code for name, code in LANGUAGE_NAMES.items() if re.search(rf"\b{name}\b", low)}
    kind, labels = infer_kind(examples)
    if labels:  # a closed label space ("spam", "sarcastic") names the data as well as the instruction does
        keywords = " ".join([keywords] + [x for x in labels if x.lower() not in keywords.lower()][:10])
    return ParsedQuery(
        text=text, instruction=instruction, examples=examples, keywords=keywords or instruction,
        dense_text=(instruction + ("\n" + ex_inputs if ex_inputs else "")).strip(),
        examples_text="\n".join(ex_lines), language=guess_language(text), named_languages=named,
        multilingual=bool(_MULTI.search(low)) or len(named) > 1, kind=kind, labels=labels)
