"""`quality.profile` end to end on a tiny fixture whose every figure was computed by hand (see comments)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datatune_core.errors import UserError
from datatune_core.quality.report import QualityConfig, QualityProfile, compare
from datatune_core.quality.rows import as_rows, dataset_version, load_dataset_rows
from datatune_core.quality.profiling import profile

ROWS = [
    # transformed source "ds1" (dataset_id + config)
    {"input": "Is fire hot?", "output": "yes", "dataset_id": "ds1", "config": "c"},  # = an eval test input
    {"input": "Is ice hot?", "output": "no", "dataset_id": "ds1", "config": "c"},
    {"input": "Can a small rock sing long opera songs on the big stage today?", "output": "no", "dataset_id": "ds1",
     "config": "c"},  # near an eval test input: 11 of 15 bigrams shared (J = 0.733)
    {"input": "Is ice hot?", "output": "no", "dataset_id": "ds1", "config": "c"},  # exact duplicate
    # synthetic rows
    {"input": "Is water wet?", "output": "yes", "source": "synthetic"},
    {"input": "Is water wet?", "output": "yes", "source": "synthetic"},
    {"input": "Is fire hot?", "output": "yes", "source": "synthetic"},
]


def _no_model(**kw) -> QualityConfig:
    return QualityConfig(embed=False, difficulty="none", **kw)


def test_sources_and_hand_computed_metrics(mini_bench):
    p = profile(ROWS, config=_no_model(), eval_task=mini_bench, name="fixture")
    assert [s.name for s in p.sources] == ["ds1|c", "synthetic", "mix", "eval:mini_yesno"]
    assert [s.kind for s in p.sources] == ["transformed", "synthetic", "mix", "eval"]

    ds = p.get("ds1|c")
    assert ds.n == 4
    # bigrams: 3 (fire) + 2 new (ice) + 13 (opera) + 0 = 18 over 4 rows
    assert ds.unique_bigrams_per_example == pytest.approx(4.5)
    assert ds.tokens_per_example == pytest.approx(6.5)  # (4 + 4 + 14 + 4) / 4
    assert ds.distinct_1 == pytest.approx(18 / 26)
    assert ds.distinct_2 == pytest.approx(18 / 22)
    assert ds.near_duplicate_rate == 0.5 and ds.exact_duplicate_rate == 0.5  # the two "Is ice hot?"
    assert ds.input_length["median"] == 4.0 and ds.output_length["mean"] == 1.0
    assert ds.input_lengths == [4, 4, 14, 4]
    assert ds.labels.counts == {"no": 3, "yes": 1}
    assert ds.labels.entropy == pytest.approx(0.811278, abs=1e-6) and ds.labels.majority_share == 0.75
    assert ds.eval_overlap == 1 and ds.eval_overlap_rate == 0.25  # "Is fire hot?"
    assert ds.eval_near_overlap_rate == 0.5  # + the opera row

    syn = p.get("synthetic")
    assert syn.unique_bigrams_per_example == pytest.approx(2.0)  # 6 bigrams / 3 rows
    assert syn.distinct_1 == pytest.approx(0.5) and syn.distinct_2 == pytest.approx(6 / 9)
    assert syn.near_duplicate_rate == pytest.approx(2 / 3)
    assert syn.labels.counts == {"yes": 3} and syn.labels.entropy == 0.0  # one label only
    assert syn.eval_overlap_rate == pytest.approx(1 / 3) and syn.eval_near_overlap_rate == pytest.approx(1 / 3)

    mix = p.get("mix")
    assert mix.n == 7 and p.main is mix
    assert mix.unique_bigrams_per_example == pytest.approx(3.0)  # 18 + 3 (water) = 21 over 7
    assert mix.distinct_1 == pytest.approx(20 / 38) and mix.distinct_2 == pytest.approx(21 / 31)
    assert mix.near_duplicate_rate == pytest.approx(6 / 7)  # ice x2, water x2, fire (ds1 + synthetic)
    assert mix.labels.counts == {"yes": 4, "no": 3}
    assert mix.eval_overlap_rate == pytest.approx(2 / 7) and mix.eval_near_overlap_rate == pytest.approx(3 / 7)

    ev = p.eval_source
    assert ev.n == 4 and ev.unique_bigrams_per_example == pytest.approx(27 / 4) and ev.tokens_per_example == 7.75
    assert ev.labels.counts == {"no": 2, "yes": 2} and ev.eval_overlap is None


def test_embedding_distance_uses_rows_not_unique_texts():
    def embed(texts):  # "fire" texts -> e0, others -> e1
        return np.array([[1.0, 0.0] if "fire" in t else [0.0, 1.0] for t in texts])

    p = profile(ROWS, config=QualityConfig(difficulty="none"), embedder=embed)
    # synthetic: water, water, fire -> pairs 0, 1, 1 -> 2/3
    assert p.get("synthetic").embedding_distance == pytest.approx(2 / 3)
    assert p.get("synthetic").embedding_sample == 3
    # ds1: fire, ice, opera, ice -> fire vs 3 others = 1 each, the rest 0 -> 3/6
    assert p.get("ds1|c").embedding_distance == pytest.approx(0.5)


def test_samples_are_shared_so_each_text_is_embedded_once():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        rng = np.random.default_rng(len(texts))
        return rng.normal(size=(len(texts), 4))

    rows = [{"input": f"row {i} of {s}", "output": "x", "source": s} for s in ("a", "b") for i in range(30)]
    p = profile(rows, config=QualityConfig(difficulty="none", embed_sample=10), embedder=embed)
    assert len(calls) == 1 and len(calls[0]) <= 20  # the mix's sample lies inside the sources' samples
    assert p.get("a").embedding_sample == 10 and p.get("mix").embedding_sample == 10


def test_single_source_is_named_after_the_dataset_and_has_no_mix():
    p = profile([{"input": "a b", "output": "c"}, {"input": "d e", "output": "f"}], config=_no_model(), name="mine")
    assert [s.name for s in p.sources] == ["mine"] and p.main.name == "mine"


def test_profile_json_round_trip_and_compare(tmp_path):
    a = profile(ROWS, config=_no_model(), name="a")
    path = a.save(tmp_path / "p.json")
    b = QualityProfile.load(path)
    assert b.to_dict() == json.loads(json.dumps(a.to_dict()))
    c = profile(ROWS[:2], config=_no_model(), name="c")
    cmp = compare(a, c)
    assert cmp["a"] == "a:mix" and cmp["b"] == "c:ds1|c"
    assert cmp["metrics"]["unique_bigrams_per_example"]["diff"] == pytest.approx(2.5 - 3.0)


def test_empty_data_and_bad_config_raise_user_errors():
    with pytest.raises(UserError, match="empty"):
        profile([], config=_no_model())
    with pytest.raises(UserError, match="difficulty"):
        QualityConfig(difficulty="gpt")


def test_dataset_version_is_a_content_hash():
    assert dataset_version(ROWS) == dataset_version([dict(r) for r in ROWS])
    assert dataset_version(ROWS) != dataset_version(ROWS[:-1])
    assert dataset_version(ROWS).startswith("sha256:")


def test_inputs_accepted_as_records_dataset_frame_and_groups():
    import datasets
    import pandas as pd

    plain = [{"input": "a", "output": "b"}]
    assert as_rows(datasets.Dataset.from_list(plain))[0].input == "a"
    assert as_rows(pd.DataFrame(plain))[0].output == "b"
    assert [(r.input, r.output) for r in as_rows([{"input": "n", "output": 0}, {"input": None, "output": 1}])] == [
        ("n", "0"), ("", "1")]  # integer labels stay labels
    g = as_rows({"synthetic": plain, "other": plain})
    assert [(r.source, r.kind) for r in g] == [("synthetic", "synthetic"), ("other", "dataset")]


def test_load_dataset_rows_from_files(tmp_path):
    import pandas as pd

    j = tmp_path / "d.jsonl"
    j.write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2", "answer": "a2"}\n', encoding="utf-8")
    rows, meta = load_dataset_rows(str(j))
    assert rows == [{"input": "q1", "output": "a1"}, {"input": "q2", "output": "a2"}] and meta["name"] == "d"
    pq = tmp_path / "d.parquet"
    pd.DataFrame({"input": ["x"], "output": ["y"], "source": ["synthetic"]}).to_parquet(pq)
    assert load_dataset_rows(str(pq))[0] == [{"input": "x", "output": "y", "source": "synthetic"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n', encoding="utf-8")
    with pytest.raises(UserError, match="input and output"):
        load_dataset_rows(str(bad))
    with pytest.raises(UserError, match="does not exist"):
        load_dataset_rows(str(tmp_path / "missing.jsonl"))
