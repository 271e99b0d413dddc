"""The reliability harness: a fault-injecting Messages-API server, tiny stage set-ups, and the checks.

Shared by tests/reliability/ and bench/reliability_report.py. Everything runs on 127.0.0.1 with the real
`anthropic` SDK (through AnthropicProvider) against `FaultServer`, whose request log is the ground truth for
billing: a request fingerprint billed twice is a unit paid twice.

`FaultServer` extends the scripted server of tests/fakes with
- "reset": the TCP connection is reset (RST) instead of answering;
- "badjson": a billed 200 reply whose model text is truncated JSON (the model's fault, not the transport's);
- hold()/abort_held(): replies are held back before they are generated; aborted ones are never billed (this
  is how a worker is killed "mid-request" deterministically).

Stages (`STAGES`) each know how to set up a project, start their job and check it:
`setup(env) -> dict`, `start(env, ctx) -> job_id`, `check(env, ctx, job) -> Check`.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.messages_server import FAULTS, MessagesServer  # noqa: E402

LLM_FAULTS = ("429", "529", "500", "slow", "reset", "malformed", "badjson", "outage", "budget")
PROCESS_FAULTS = ("kill9", "app_killed", "db_locked")
API_KEY = "sk-ant-reliability-" + "Q7x9Vw2Lm4Np8Rt6Ks3Jd5Hf1Gz0Yc"  # a fake key with a distinctive shape
TIMEOUT_S = 1.0  # the client's request timeout in these runs ("slow" replies take longer)


# ----------------------------------------------------------------------------------------------- server
class FaultServer(MessagesServer):
    """MessagesServer + connection resets, billed malformed model text, and hold/abort of replies."""

    def __init__(self, *a: Any, **kw: Any):
        kw.setdefault("api_key", API_KEY)
        kw.setdefault("slow_s", TIMEOUT_S + 1.0)
        kw.setdefault("retry_after", 0.05)
        super().__init__(*a, **kw)
        self._special: list[str] = []
        self._gate = threading.Event()
        self._gate.set()
        self._abort = False
        self.held = 0
        self.badjson_served = 0
        self.injected = 0  # faults handed out (a "slow" one is logged only when its sleep ends)
        self.outage_left = 0  # the next N requests get 503: more than the client's retries can absorb

    def queue_faults(self, *kinds: str) -> None:
        with self._lock:
            for k in kinds:
                if k not in FAULTS and k not in ("reset", "badjson"):
                    raise ValueError(f"unknown fault {k!r}")
                (self._special if k in ("reset", "badjson") else self._queue).append(k)

    def hold(self) -> None:
        self._abort = False
        self._gate.clear()

    def abort_held(self) -> None:
        """Drop the held requests unanswered and unbilled (their client is gone), then serve normally."""
        self._abort = True
        self._gate.set()
        time.sleep(0.2)
        self._abort = False

    def release(self) -> None:
        self._gate.set()

    def _next_fault(self) -> str | None:
        f = super()._next_fault()
        if f:
            with self._lock:
                self.injected += 1
        return f

    def _pop_special(self) -> str | None:
        with self._lock:
            if self._special:
                return self._special.pop(0)
        return None

    def make_message(self, req: dict) -> dict:
        msg = super().make_message(req)
        if getattr(self._tls, "badjson", False):
            self._tls.badjson = False
            text = json.dumps({"input": "truncated", "output": "never finished"})
            msg["content"] = [{"type": "text", "text": text[: len(text) // 3]}]
            msg["stop_reason"] = "max_tokens"
        return msg

    _tls = threading.local()

    def _handler_class(self):
        base = super()._handler_class()
        srv = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def _messages(self, req: dict) -> None:
                fp = __import__("hashlib").sha256(json.dumps(req.get("messages"), sort_keys=True).encode()) \
                    .hexdigest()[:16]
                if not srv._gate.is_set():
                    with srv._lock:
                        srv.held += 1
                    srv._gate.wait(30)
                if srv._abort:
                    srv._log(path="/v1/messages", status=499, fault="aborted", billed=False, fingerprint=fp)
                    return self._reset()
                with srv._lock:
                    out = srv.outage_left > 0
                    if out:
                        srv.outage_left -= 1
                        srv.injected += 1
                if out:
                    srv._log(path="/v1/messages", status=503, fault="outage", billed=False, fingerprint=fp)
                    return self._error(503, "api_error", "service unavailable (outage)",
                                       {"retry-after": "0.020", "retry-after-ms": "20"})
                special = srv._pop_special() if len(req.get("messages") or []) == 1 else None  # not repairs
                if special == "reset":
                    srv._log(path="/v1/messages", status=0, fault="reset", billed=False, fingerprint=fp)
                    return self._reset()
                srv._tls.badjson = special == "badjson"
                if special == "badjson":
                    srv.badjson_served += 1
                super()._messages(req)

            def _reset(self) -> None:
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass
                self.wfile = io.BytesIO()
                self.close_connection = True

        return Handler

    def billed_twice(self) -> int:
        """Requests (by fingerprint) answered and billed more than once."""
        return sum(1 for n in self.billed_counts().values() if n > 1)

    def faults_served(self) -> int:
        with self._lock:
            return self.injected + sum(1 for e in self.log if e.get("fault") in ("reset", "aborted")) \
                + self.badjson_served


def responder(req: dict) -> Any:
    """A deterministic 'model' for every stage, chosen by the forced tool's schema title."""
    tools = req.get("tools") or []
    title = (tools[0].get("input_schema") or {}).get("title") if tools else None
    last = req["messages"][-1]["content"]
    text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if isinstance(b, dict))
    first = req["messages"][0]["content"]
    first = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first if isinstance(b, dict))
    if title == "RowReply":
        row = json.loads(first.split("\n", 1)[1])
        return {"input": f"{row['query']} Context: {row['passage']}", "output": row["label"]}
    if title == "SynthReply":
        m = re.search(r"request #(\d+)", first)
        i = int(m.group(1)) if m else 0
        n = int(re.search(r"Write (\d+) new", first).group(1)) if "Write" in first else 2
        return {"examples": [{"input": f"Synthetic question {i}-{j} about {WORDS[(i * 3 + j) % len(WORDS)]} "
                                       f"and {WORDS[(i * 5 + j * 7 + 1) % len(WORDS)]} number {i * 100 + j}?",
                              "output": WORDS[(i + j) % len(WORDS)]} for j in range(n)]}
    if title == "RerankVote":
        ids = re.findall(r"^\[\d+\] (\S+)", first, flags=re.M)
        return {"ranking": [{"dataset": d, "config": "default", "reason": f"{d} has passages and labels."}
                            for d in sorted(ids)[:3]], "none_fits": False}
    if tools:
        from datatune_core.llm.parsing import schema_example

        return schema_example(tools[0].get("input_schema") or {})
    return str(2 + len(text) % 3)  # the difficulty judge: a rating 1-5


WORDS = ["river", "planet", "violin", "glacier", "harbor", "meadow", "lantern", "canyon", "orchard", "comet",
         "falcon", "library", "volcano", "bakery", "island", "tunnel", "garden", "castle", "desert", "forest"]


# ----------------------------------------------------------------------------------------------- env
@dataclass
class Env:
    """One test's world: a workspace, the scripted server, data folder."""

    home: Path
    srv: FaultServer
    data: Path
    store: Any = None

    def __post_init__(self) -> None:
        from datatune_core.store import Store

        self.store = Store.open(self.home)


def llm_env(url: str) -> dict[str, str]:
    """Environment that sends every LLM call of the app and its workers to the scripted server."""
    return {"DATATUNE_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": url,
            "DATATUNE_LLM_TIMEOUT": str(TIMEOUT_S), "DATATUNE_NO_CACHE": ""}


def qa_rows(n: int, offset: int = 0) -> list[dict]:
    return [{"passage": f"Passage {i} tells about the {WORDS[i % 20]} near town {i * 7 + 3}.",
             "query": f"What is passage {i} about?", "label": WORDS[i % 20]} for i in range(offset, offset + n)]


def make_project(env: Env, n_rows: int = 12, name: str = "rel") -> int:
    """A project with one accepted local QA dataset (n rows) and its expanded task/mapping/plan (heuristics)."""
    from datatune_core.catalog.records import ConfigInfo, DatasetRecord
    from datatune_core.transformation.pipeline import prepare_source

    st = env.store
    pid = st.create_project(name, "Answer the question about the passage with one word.",
                            [{"input": "What is passage x about? Context: Passage x tells about the sea.",
                              "output": "sea"}])
    env.data.mkdir(parents=True, exist_ok=True)
    rows = qa_rows(n_rows)
    f = env.data / f"{name}-qa.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = ConfigInfo(name="default", columns={"passage": "string", "query": "string", "label": "string"},
                     splits={"train": len(rows)}, sample_rows=rows[:3], rows_path=str(f))
    rec = DatasetRecord(id="local/qa", name="local/qa", description="Passages with a question and a one-word label.",
                        source="local", configs=[cfg], catalog_path=str(env.data / "catalog.jsonl"))
    st.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted", rerank_rank=1)
    prepare_source(st, pid, rec.id, "default", client=None)  # heuristic spec/mapping/plan: no strong-model calls
    return pid


def add_kept_rows(env: Env, pid: int, n: int) -> None:
    from datatune_core.store import RowRecord

    env.store.add_rows(pid, [RowRecord(input=f"{r['query']} Context: {r['passage']}", output=r["label"],
                                       status="kept", dataset_id="local/qa", source_row_id=str(i), run_id="seed")
                             for i, r in enumerate(qa_rows(n))])


# ----------------------------------------------------------------------------------------------- checks
@dataclass
class Check:
    """What a run proved: the unit accounting of one stage."""

    expected: int  # units the stage must produce
    produced: int  # units found in the store
    lost: int  # expected - produced (never negative)
    counts_match: bool  # what the user sees (job progress / result / status view) equals the store
    detail: str = ""


@dataclass
class Outcome:
    stage: str
    fault: str
    first_status: str  # the clear state the job ended in when the fault hit
    final_status: str  # after resume (if it was needed)
    resumed: bool
    units_expected: int
    units_lost: int
    billed_twice: int
    counts_match: bool
    faults_served: int
    billed: int
    reason: str = ""
    seconds: float = 0.0

    def ok(self) -> bool:
        return (self.final_status == "done" and self.units_lost == 0 and self.billed_twice == 0
                and self.counts_match and self.first_status in ("done", "paused", "failed", "interrupted",
                                                                "cancelled"))

    def to_dict(self) -> dict:
        return asdict(self)


def record_outcome(o: Outcome) -> None:
    """Append an outcome to $DATATUNE_RELIABILITY_LOG (read by bench/reliability_report.py)."""
    path = os.environ.get("DATATUNE_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"type": "fault", **o.to_dict()}) + "\n")


# ----------------------------------------------------------------------------------------------- stages
N_TRANSFORM = 12
N_SYNTH = 8
N_JUDGE = 10
N_VOTES = 4


def _job_view(st: Any, job_id: int) -> Any:
    return st.get_job(job_id)


class Stage:
    name = ""
    llm = True

    def setup(self, env: Env) -> dict:
        raise NotImplementedError

    def config(self, env: Env, ctx: dict) -> tuple[str, dict, int | None]:
        """(job kind, job config, project id)."""
        raise NotImplementedError

    def check(self, env: Env, ctx: dict, job: Any) -> Check:
        raise NotImplementedError


class TransformStage(Stage):
    name = "transform"

    def setup(self, env: Env) -> dict:
        return {"pid": make_project(env, N_TRANSFORM)}

    def config(self, env, ctx):
        from datatune_core.transformation.pipeline import TransformOptions

        opts = TransformOptions(target_size=N_TRANSFORM, batch_size=3, probe_size=N_TRANSFORM, path="llm",
                                concurrency=3, validation={"near_dup_threshold": 1.0})
        return "transform", opts.to_dict(), ctx["pid"]

    def check(self, env, ctx, job):
        from datatune_core.transformation.run import transform_status

        st, pid = env.store, ctx["pid"]
        run_id = f"transform-{job.id}"
        kept = st.count_rows(pid, run_id=run_id, status=["kept", "edited"])
        ids = {r[0] for r in st.query("SELECT source_row_id FROM rows WHERE project_id=? AND run_id=?", (pid, run_id))}
        expected = {f"default:{i}" for i in range(N_TRANSFORM)} if ids and next(iter(ids)).startswith("default:") \
            else {str(i) for i in range(N_TRANSFORM)}
        produced = len(ids & expected) if kept == len(ids) else kept
        view = transform_status(st, pid)
        match = (job.result or {}).get("kept") == kept == view["rows"]["by_status"].get("kept", 0) \
            and view["job"]["done"] == kept and view["rows"]["total"] == len(ids)
        return Check(N_TRANSFORM, produced, max(0, N_TRANSFORM - produced), bool(match),
                     f"kept {kept}, ids {len(ids)}, status view {view['rows']}")


class SynthStage(Stage):
    name = "synth"

    def setup(self, env):
        return {"pid": make_project(env, 3, name="syn")}

    def config(self, env, ctx):
        from datatune_core.synth.generate import SynthOptions

        opts = SynthOptions(n_rows=N_SYNTH, per_call=1, calls_per_unit=2, concurrency=2,
                            validation={"near_dup_threshold": 1.0})
        return "synth", opts.to_dict(), ctx["pid"]

    def check(self, env, ctx, job):
        st, pid = env.store, ctx["pid"]
        run_id = f"synth-{job.id}"
        kept = st.count_rows(pid, run_id=run_id, status=["kept", "edited"])
        calls = {int(r[0].rsplit("/", 1)[-1].split(":")[0]) for r in st.query(  # "<run>/<call>:<example>"
            "SELECT source_row_id FROM rows WHERE project_id=? AND run_id=?", (pid, run_id))}
        res = job.result or {}
        match = res.get("kept") == kept == job.progress_done == st.row_stats(pid)["by_status"].get("kept") \
            and calls == set(range(res.get("calls", -1)))
        return Check(N_SYNTH, kept, max(0, N_SYNTH - kept), bool(match),
                     f"kept {kept}, calls {sorted(calls)}, result {res}")


class JudgeStage(Stage):
    name = "judge"

    def setup(self, env):
        pid = make_project(env, 3, name="jud")
        add_kept_rows(env, pid, N_JUDGE)
        return {"pid": pid}

    def config(self, env, ctx):
        return "quality", {"quality": {"embed": False, "difficulty": "judge", "judge_sample": 50}}, ctx["pid"]

    def check(self, env, ctx, job):
        from datatune_core.quality.job import find_profile

        st, pid = env.store, ctx["pid"]
        prof = find_profile(st, pid)
        d = prof.main.difficulty if prof else None
        n_valid = getattr(d, "n_valid", 0) or 0
        res = job.result or {}
        arts = st.list_artifacts(pid)
        match = bool(prof) and res.get("artifact_id") == arts[0]["id"] and prof.main.n == N_JUDGE \
            and (res.get("summary") or {}).get("n") in (None, N_JUDGE)
        return Check(N_JUDGE, n_valid, max(0, N_JUDGE - n_valid), match,
                     f"difficulty {d.to_dict() if d else None}, {len(arts)} artifact(s)")


class RerankStage(Stage):
    name = "rerank"

    def setup(self, env):
        return {"pid": env.store.create_project("rer", "Answer the question about the passage with one word.",
                                                [{"input": "What is it about? Passage: the sea.", "output": "sea"}],
                                                settings={"concurrency": 1})}  # votes one by one: budget bites

    def config(self, env, ctx):
        return "test.rerank_job", {"votes": N_VOTES, "data": str(env.data)}, ctx["pid"]

    def check(self, env, ctx, job):
        st, pid = env.store, ctx["pid"]
        res = job.result or {}
        ranked = [c for c in st.list_candidates(pid) if c.get("rerank_rank")]
        votes = res.get("usable_votes", 0)
        match = len(ranked) == len(res.get("ranked", [])) and [c["dataset_id"] for c in ranked] == res.get("ranked")
        return Check(N_VOTES, votes, max(0, N_VOTES - votes), match, f"result {res}")


STAGES: dict[str, Stage] = {s.name: s for s in (RerankStage(), TransformStage(), SynthStage(), JudgeStage())}


# ----------------------------------------------------------------------------------------------- runners
def _wait(st: Any, job_id: int, timeout: float = 120) -> Any:
    from datatune_core import jobs

    return jobs.wait_job(st, job_id, timeout_s=timeout, poll_s=0.05)


def _resume(env: Env, job_id: int, background: bool, raise_budget: bool) -> Any:
    from datatune_core import jobs

    st = env.store
    if raise_budget:
        job = st.get_job(job_id)
        st.update_job(job_id, config={**job.config, "budget_usd": None})
    job = jobs.resume_job(st, job_id, background=background)
    return job if not background else _wait(st, job_id)


def run_llm_fault(env: Env, stage: Stage, fault: str) -> Outcome:
    """Run one stage in-process (the worker's own code path, `jobs.run_job`) under one LLM fault."""
    from datatune_core import jobs

    t0 = time.monotonic()
    ctx = stage.setup(env)
    kind, cfg, pid = stage.config(env, ctx)
    if fault == "budget":
        cfg = {**cfg, "budget_usd": 1e-6}  # reached after the first answers: the job must pause
    elif fault == "outage":  # the provider is gone for longer than the client retries (a laptop asleep)
        env.srv.outage_left = 200  # more than every attempt of the whole run could absorb
    elif fault in ("429", "529", "500", "slow", "reset", "malformed", "badjson"):
        env.srv.queue_faults(*([fault] * (2 if fault == "slow" else 3)))
    st = env.store
    job_id = st.create_job(kind, cfg, project_id=pid)
    first = jobs.run_job(st, job_id)
    final, resumed = first, False
    if first.status != "done":
        env.srv.outage_left = 0  # the user resumes once it is back
        final, resumed = _resume(env, job_id, background=False, raise_budget=fault == "budget"), True
    chk = stage.check(env, ctx, final)
    return Outcome(stage.name, fault, first.status, final.status, resumed, chk.expected, chk.lost,
                   env.srv.billed_twice(), chk.counts_match, env.srv.faults_served(), len(env.srv.billed()),
                   reason=(first.message or first.error or "")[:200] + (f" | {chk.detail}" if chk.detail else ""),
                   seconds=round(time.monotonic() - t0, 2))


# ----------------------------------------------------------------------------------------------- model stages
_TINY: dict[str, Path] = {}


def tiny_model(root: Path) -> Path:
    """A tiny randomly initialised Llama built from a config (tests/train/tiny.py), once per process."""
    if "dir" not in _TINY or not (_TINY["dir"] / "config.json").is_file():
        from tests.train.tiny import build_tiny_model_dir

        _TINY["dir"] = build_tiny_model_dir(Path(root) / "tiny-llama")
    return _TINY["dir"]


def minibench(root: Path) -> Path:
    from tests.train.minibench import write_minibench

    d = Path(root) / "minibench"
    if not (d / "splits.json").is_file():
        write_minibench(d)
    os.environ["DATATUNE_BIGBENCH_DIR"] = str(d)
    return d


TRAIN_STEPS = 24


class TrainStage(Stage):
    name = "train"
    llm = False

    def setup(self, env):
        pid = make_project(env, 3, name="trn")
        add_kept_rows(env, pid, 40)
        return {"pid": pid, "model": str(tiny_model(env.data.parent / "models"))}

    def config(self, env, ctx):
        from datatune_core.training.config import LoraTrainConfig

        cfg = LoraTrainConfig.from_preset("cpu-demo", model=ctx["model"], max_steps=TRAIN_STEPS, batch_size=2,
                                          max_seq_len=160, eval_every=4, save_every=4, target_modules="all-linear",
                                          max_rows=40)
        return "train", cfg.to_dict(), ctx["pid"]

    def check(self, env, ctx, job):
        st = env.store
        runs = st.list_training_runs(ctx["pid"])
        steps = [m["step"] for r in runs for m in st.metrics(r["id"])]
        res = job.result or {}
        adapter = Path(res.get("adapter", "/nonexistent"))
        total = job.progress_total or TRAIN_STEPS  # optimizer steps of the run (max_steps or one epoch)
        produced = len(set(steps) & set(range(1, total + 1)))
        match = (adapter / "adapter_config.json").is_file() and len(runs) == 1 and runs[0]["status"] == "done" \
            and job.progress_done == max(steps or [0]) == total \
            and st.list_artifacts(ctx["pid"], kind="adapter") != []
        return Check(total, produced, total - produced, bool(match),
                     f"steps {min(steps or [0])}..{max(steps or [0])} ({len(steps)} metrics), runs "
                     f"{[(r['id'], r['status']) for r in runs]}, progress {job.progress_done}/{job.progress_total}")


class EvalStage(Stage):
    name = "evaluate"
    llm = False

    def setup(self, env):
        minibench(env.data.parent)
        return {"model": str(tiny_model(env.data.parent / "models"))}

    def config(self, env, ctx):
        return "evaluate", {"units": ["mini_colors", "mini_reverse"], "model": ctx["model"]}, None

    def check(self, env, ctx, job):
        from datatune_core.benchmark import bigbench

        st = env.store
        want = [f"base|{u}|{ex.index}" for u in ("mini_colors", "mini_reverse") for ex in bigbench.load_unit(u).test]
        done = st.done_units(job.id)
        # unit keys are "variant|style|unit|index": the style (prompt format) is one per run here
        done = {f"{k.split('|')[0]}|{k.split('|')[2]}|{k.split('|')[3]}" for k in done if k.count("|") == 3}
        res = st.list_eval_results()
        produced = len(set(want) & done)
        match = job.progress_done == len(want) == job.progress_total and len(res) == 2 \
            and sum(r["n"] for r in res) == len(want)
        return Check(len(want), produced, len(want) - produced, bool(match),
                     f"{len(done)} units, results {[(r['task'], r['n'], r['score']) for r in res]}, "
                     f"progress {job.progress_done}/{job.progress_total}")


STAGES.update({s.name: s for s in (TrainStage(), EvalStage())})


# ----------------------------------------------------------------------------------------------- process faults
def _mid(env: Env, stage: Stage, job_id: int) -> bool:
    """The job is past its first committed work but not finished."""
    st = env.store
    units = len(st.done_units(job_id))
    if stage.name == "transform":
        return units >= 2
    if stage.name == "synth":
        return units >= 1
    if stage.name in ("judge", "rerank"):
        return len(env.srv.billed()) >= 2
    if stage.name == "train":
        return any(k.startswith("g0:ckpt:") for k in st.done_units(job_id))
    return units >= 2


def _start_app(env: Env, kind: str, cfg: dict, pid: int | None) -> subprocess.Popen:
    """A stand-in for the Streamlit server process: it starts the job exactly as a page does, then idles."""
    code = ("import json,sys,time; from datatune_core.store import Store; from datatune_core import jobs; "
            "st=Store.open(sys.argv[1]); a=json.loads(sys.argv[2]); "
            "print(jobs.start_job(st, a['kind'], a['cfg'], project_id=a['pid']), flush=True); time.sleep(120)")
    return subprocess.Popen([sys.executable, "-c", code, str(env.home), json.dumps({"kind": kind, "cfg": cfg,
                                                                                      "pid": pid})],
                            stdout=subprocess.PIPE, text=True, cwd=str(ROOT), start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def lock_db(db: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the workspace's write lock (BEGIN EXCLUSIVE) for `seconds`."""
    code = ("import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30); "
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(float(sys.argv[2])); "
            "c.execute('COMMIT')")
    p = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _poll(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_process_fault(env: Env, stage: Stage, fault: str) -> Outcome:
    """Run one stage in a real worker process under kill -9 / the app killed / a locked database."""
    from datatune_core import jobs

    t0 = time.monotonic()
    st = env.store
    ctx = stage.setup(env)
    kind, cfg, pid = stage.config(env, ctx)
    if stage.llm:
        env.srv.latency_s = 0.08  # long enough to be caught mid-job
    app = None
    if fault == "app_killed":
        app = _start_app(env, kind, cfg, pid)
        job_id = int(app.stdout.readline())
    else:
        job_id = jobs.start_job(st, kind, cfg, project_id=pid)
    _poll(lambda: _mid(env, stage, job_id) or st.get_job(job_id).status in ("done", "failed"), 180, "mid-job")
    reason = ""
    if fault == "kill9":
        if stage.llm:
            env.srv.hold()  # replies not yet generated stay unbilled; those in transit land in the cache
            time.sleep(0.4)
        before = st.get_job(job_id)
        assert before.status == "running", f"{stage.name} finished before it could be killed ({before.status})"
        pid_w = before.pid
        jobs.kill_job(st, job_id)
        _poll(lambda: not jobs._pid_alive(pid_w), 10, "the worker to die")
        if stage.llm:
            env.srv.abort_held()
        jobs.refresh_jobs(st, stale_after_s=0)
        first = st.get_job(job_id)
        reason = first.message or ""
        final = _resume(env, job_id, background=True, raise_budget=False)
        resumed = True
    elif fault == "app_killed":
        assert st.get_job(job_id).status == "running"
        os.killpg(app.pid, signal.SIGKILL)
        app.wait(10)
        app.stdout.close()
        first = final = _wait(st, job_id, 180)
        resumed = False
        reason = f"app process {app.pid} killed; worker kept running"
    elif fault == "db_locked":
        assert st.get_job(job_id).status == "running"
        locker = lock_db(env.home / "workspace.db", 3.0)
        seen = st.get_job(job_id)  # readers are not blocked (WAL): the UI still shows progress
        locker.wait(30)
        locker.stdout.close()
        first = final = _wait(st, job_id, 180)
        resumed = False
        if first.status != "done":
            final, resumed = _resume(env, job_id, background=True, raise_budget=False), True
        reason = f"write lock held 3 s by another process at {seen.progress_done} units; job waited"
    else:
        raise ValueError(fault)
    env.srv.latency_s = 0.0
    chk = stage.check(env, ctx, final)
    return Outcome(stage.name, fault, first.status, final.status, resumed, chk.expected, chk.lost,
                   env.srv.billed_twice(), chk.counts_match, 1, len(env.srv.billed()),
                   reason=(reason or first.error or "")[:200] + (f" | {chk.detail}" if chk.detail else ""),
                   seconds=round(time.monotonic() - t0, 2))


def run_fault(env: Env, stage: str, fault: str) -> Outcome:
    s = STAGES[stage]
    return run_process_fault(env, s, fault) if fault in PROCESS_FAULTS else run_llm_fault(env, s, fault)
