"""Price table: model name -> USD per million tokens, from the bundled `data/prices.toml` plus the user's
`$DATATUNE_HOME/prices.toml` (which overrides model by model).

    >>> from datatune_core.llm.prices import load_prices, Usage
    >>> load_prices().cost("claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=200))
    0.002
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from datatune_core.config import default_home
from datatune_core.errors import UserError
from datatune_core.llm.base import Usage

BUNDLED = Path(__file__).resolve().parent.parent / "data" / "prices.toml"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float
    known: bool = True  # False: the fallback entry was used


@dataclass
class PriceTable:
    models: dict[str, ModelPrice] = field(default_factory=dict)
    fallback: ModelPrice | None = None
    batch_discount: float = 0.5
    sources: list[str] = field(default_factory=list)

    def lookup(self, model: str, priced: bool = True) -> ModelPrice:
        """The longest entry that prefixes `model`; else the fallback for a paid provider (its capabilities say
        `priced`), free for others."""
        best = ""
        for name in self.models:
            if model.startswith(name) and len(name) > len(best):
                best = name
        if best:
            return self.models[best]
        if priced and self.fallback is not None:
            return ModelPrice(self.fallback.input, self.fallback.output, self.fallback.cache_write,
                              self.fallback.cache_read, known=False)
        return ModelPrice(0.0, 0.0, 0.0, 0.0, known=False)

    def cost(self, model: str, usage: Usage, *, batch: bool = False, priced: bool = True) -> float:
        p = self.lookup(model, priced)
        usd = (usage.input_tokens * p.input + usage.output_tokens * p.output
               + usage.cache_write_tokens * p.cache_write + usage.cache_read_tokens * p.cache_read) / 1e6
        if batch:
            usd *= self.batch_discount
        return round(usd, 10)

    def rows(self) -> list[dict]:
        return [{"model": k, "input": v.input, "output": v.output, "cache_write": v.cache_write,
                 "cache_read": v.cache_read} for k, v in sorted(self.models.items())]


def _parse(path: Path, table: PriceTable) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"Cannot read the price table {path}: {e}. Fix the file or delete it to use the "
                        "bundled prices.") from e

    def price(name: str, d: dict) -> ModelPrice:
        try:
            inp = float(d["input"])
            out = float(d["output"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"Price entry {name!r} in {path} needs numeric `input` and `output` "
                            "(USD per million tokens).") from e
        return ModelPrice(inp, out, float(d.get("cache_write", inp * 1.25)), float(d.get("cache_read", inp * 0.1)))

    for name, d in (data.get("models") or {}).items():
        table.models[name] = price(name, d)
    if "fallback" in data:
        table.fallback = price("fallback", data["fallback"])
    if "batch_discount" in (data.get("defaults") or {}):
        table.batch_discount = float(data["defaults"]["batch_discount"])
    table.sources.append(str(path))


def user_prices_path() -> Path:
    return default_home() / "prices.toml"


def load_prices() -> PriceTable:
    table = PriceTable()
    _parse(BUNDLED, table)
    user = user_prices_path()
    if user.is_file():
        _parse(user, table)
    return table
