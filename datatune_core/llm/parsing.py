"""Getting a JSON object out of model text: fenced blocks, prose around the object, truncated or sloppy JSON
(trailing commas, single quotes, unclosed brackets) via the maintained `json_repair` library, then schema
validation with pydantic.

    >>> from datatune_core.llm.parsing import extract_json
    >>> extract_json('Sure! ```json\\n{"label": "positive",}\\n```')
    {'label': 'positive'}
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

PARSER_VERSION = 1  # bump when extract_json / validate read replies differently (it is part of every cache key)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)


def extract_json(text: str) -> Any:
    """The first JSON object/array in `text`, repaired if needed; ValueError when there is none."""
    if text is None:
        raise ValueError("empty reply")
    s = text.strip()
    m = _FENCE.search(s)
    if m:
        s = m.group(1).strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    starts = [i for i in (s.find("{"), s.find("[")) if i >= 0]
    if not starts:
        raise ValueError(f"no JSON object in reply: {text[:120]!r}")
    start = min(starts)
    try:
        obj, _ = json.JSONDecoder().raw_decode(s[start:])
        return obj
    except json.JSONDecodeError:
        pass
    import json_repair

    obj = json_repair.repair_json(s[start:], return_objects=True)
    if obj in ("", None) or not isinstance(obj, (dict, list)):
        raise ValueError(f"unparseable JSON in reply: {text[:120]!r}")
    return obj


def validate(schema: type[BaseModel], data: Any, text: str) -> tuple[BaseModel | None, str | None]:
    """(instance, None) when `data` (or else JSON found in `text`) fits `schema`; (None, reason) otherwise."""
    obj = data
    if obj is None:
        try:
            obj = extract_json(text)
        except ValueError as e:
            return None, str(e)
    try:
        return schema.model_validate(obj), None
    except ValidationError as e:
        # A model sometimes wraps the object in one extra key ({"result": {...}}): accept the inner one.
        if isinstance(obj, dict) and len(obj) == 1:
            inner = next(iter(obj.values()))
            if isinstance(inner, dict):
                try:
                    return schema.model_validate(inner), None
                except ValidationError:
                    pass
        return None, _short_errors(e)


def _short_errors(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


def schema_example(schema: dict) -> Any:
    """A minimal value that fits a JSON schema (used by test doubles to produce well-formed replies)."""
    defs = schema.get("$defs", {})

    def gen(s: dict) -> Any:
        if "$ref" in s:
            return gen(defs.get(s["$ref"].split("/")[-1], {}))
        if "enum" in s:
            return s["enum"][0]
        if "const" in s:
            return s["const"]
        if "default" in s:
            return s["default"]
        for k in ("anyOf", "oneOf", "allOf"):
            if k in s:
                return gen(s[k][0])
        t = s.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "null")
        if t == "object" or "properties" in s:
            return {k: gen(v) for k, v in s.get("properties", {}).items()}
        if t == "array":
            return [gen(s.get("items", {}))] * max(1, s.get("minItems", 1))
        if t == "integer":
            return int(s.get("minimum", 0))
        if t == "number":
            return float(s.get("minimum", 0))
        if t == "boolean":
            return True
        if t == "null":
            return None
        return "x" * max(1, s.get("minLength", 1))

    return gen(schema)
