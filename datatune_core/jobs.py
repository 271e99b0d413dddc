"""Background jobs: a saved config + a worker subprocess (argv list, no shell) + progress in the store.

A job is made of *units* (a row, a batch, a checkpoint). A job function receives a `JobContext`, asks it
which units are still to do, and commits each unit's result (together with the unit's own writes) before
starting the next, so `kill -9` loses at most the in-flight units and a resume never redoes a committed one.
The worker writes a heartbeat every few seconds; a running job whose heartbeat is stale and whose process is
gone is marked `interrupted` and can be resumed. A job whose remaining work another job took over (`continued_by`:
e.g. *Retry failed rows* finishing a budget-paused transformation) is `cancelled` and can never be resumed.

Job kinds are names registered in `JOB_KINDS` (-> "module:function"); a job row can name only a registered kind.

    >>> from datatune_core import jobs
    >>> job_id = jobs.start_job(store, "transform", {"project_id": 1})   # returns at once
    >>> jobs.cancel_job(store, job_id); jobs.resume_job(store, job_id)
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.store import Job, Store
from datatune_core.errors import JobCancelled, JobError, JobPaused  # noqa: F401  (defined in errors.py)

HEARTBEAT_S = 2.0
STALE_AFTER_S = 20.0

# The job-kind registry: name -> "module:function", registered in code only. A job row names a kind, never a
# callable: a kind that is not registered here (or by `register_job_kind`) cannot run, whatever a workspace or an
# imported project says.
JOB_KINDS: dict[str, str] = {
    "index": "datatune_core.retrieval.search:run_index_job",
    "search": "datatune_core.retrieval.search:run_search_job",
    "dry_run": "datatune_core.transformation.dry_run:run_dry_run_job",
    "transform": "datatune_core.transformation.run:run_transform_job",
    "repair": "datatune_core.transformation.repair:run_repair_job",
    "synth": "datatune_core.synth.generate:run_synth_job",
    "train": "datatune_core.training.launch:run_train_job",
    "evaluate": "datatune_core.evaluation.bigbench_eval:run_eval_job",
    "quality": "datatune_core.quality.job:run_quality_job",
    "export_model": "datatune_core.exporting.model_job:run_model_export_job",
}


# Job rows written before issue 16's package layout may name a kind by its old "module:function" path
# (restructure: keep — tools/restructure_moves.py leaves the lines below alone).
PATHS_BEFORE_PACKAGES: dict[str, str] = {
    "datatune_core.retrieve:run_index_job": "index",  # restructure: keep
    "datatune_core.retrieve:run_search_job": "search",  # restructure: keep
    "datatune_core.transform:run_dry_run_job": "dry_run",  # restructure: keep
    "datatune_core.transform_run:run_transform_job": "transform",  # restructure: keep
    "datatune_core.synth:run_synth_job": "synth",  # restructure: keep
    "datatune_core.train:run_train_job": "train",  # restructure: keep
    "datatune_core.evaluate:run_eval_job": "evaluate",  # restructure: keep
    "datatune_core.quality:run_quality_job": "quality",  # restructure: keep
}


FAILED_ON_INPUT = "failed on your input"  # job message when a fixable user error stopped it
FAILED_INSIDE = "failed inside DataTune"


def job_error(e: BaseException) -> tuple[str, str]:
    """(plain error text, job message): no class names; the traceback goes to the job log."""
    from datatune_core.errors import user_error_message

    msg = user_error_message(e)
    if msg is not None:
        return msg.strip(), FAILED_ON_INPUT
    return (f"An internal error stopped the job ({str(e).strip() or 'no details'}); the job log has the details. "
            "Try again, and report it if it repeats.", FAILED_INSIDE)


PLUGINS_ENV = "DATATUNE_JOB_PLUGINS"  # comma-separated modules whose import registers more kinds (tests, extensions)
_loaded_plugins: set[str] = set()


def register_job_kind(name: str, target: str) -> None:
    """Register job kind `name` -> "module:function" (called by code, e.g. a plugin module at import)."""
    if not re.fullmatch(r"[a-z][a-z0-9_\-.]*", name):
        raise ValueError(f"A job kind is a plain name (letters, digits, _ - .), not {name!r}.")
    if target.count(":") != 1:
        raise ValueError(f"A job kind's target is 'module:function', not {target!r}.")
    JOB_KINDS[name] = target


def _load_plugins() -> None:
    for mod in (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",")):
        if mod and mod not in _loaded_plugins:
            importlib.import_module(mod)
            _loaded_plugins.add(mod)


def registered_kind(kind: str) -> str | None:
    """The registered name of `kind` (old "module:function" paths of built-in kinds map to their names), or None."""
    _load_plugins()
    kind = PATHS_BEFORE_PACKAGES.get(kind, kind)
    return kind if kind in JOB_KINDS else None


def resolve_kind(kind: str) -> Callable[["JobContext"], Any]:
    """The function of a registered job kind; any other kind (e.g. a "module:function" string) is refused."""
    name = registered_kind(kind)
    if name is None:
        raise JobError(f"Unknown job kind {kind!r}: it cannot run. Known kinds: {', '.join(sorted(JOB_KINDS))}.")
    mod_name, fn_name = JOB_KINDS[name].split(":", 1)
    mod = importlib.import_module(mod_name)
    return getattr(mod, fn_name)


@dataclass
class JobContext:
    """What a job function sees: its config, the store and unit/progress helpers."""

    store: Store
    job: Job
    _last_check: float = field(default=0.0, repr=False)
    _cancelled: bool = field(default=False, repr=False)

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def config(self) -> dict:
        return self.job.config

    @property
    def project_id(self) -> int | None:
        return self.job.project_id

    def pending(self, unit_keys: Iterable[str]) -> list[str]:
        """The unit keys not yet committed, in the given order."""
        done = self.store.done_units(self.job.id)
        return [k for k in unit_keys if k not in done]

    def done_count(self) -> int:
        return len(self.store.done_units(self.job.id))

    def commit(self, unit_key: str, result: Any = None, extra: Callable | None = None, status: str = "done") -> bool:
        """Commit one unit (and its `extra(conn)` writes) atomically; False if already committed."""
        self.check_cancel()
        return self.store.commit_unit(self.job.id, unit_key, result, status=status, extra=extra)

    def set_total(self, total: int) -> None:
        self.store.update_job(self.job.id, progress_total=total)

    def progress(self, message: str | None = None, done: int | None = None, total: int | None = None) -> None:
        fields: dict[str, Any] = {"heartbeat_at": time.time()}
        if message is not None:
            fields["message"] = message
        if done is not None:
            fields["progress_done"] = done
        if total is not None:
            fields["progress_total"] = total
        self.store.update_job(self.job.id, **fields)

    def log(self, message: str, level: str = "info") -> None:
        self.store.log(self.job.id, message, level)

    @property
    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_check > 0.2:
            self._last_check = now
            row = self.store.query_one("SELECT cancel_requested FROM jobs WHERE id=?", (self.job.id,))
            self._cancelled = bool(row and row[0])
        return self._cancelled

    def check_cancel(self) -> None:
        if self.cancelled:
            raise JobCancelled()


# ----------------------------------------------------------------------------- process helpers
def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap if it is our own finished child
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        import psutil

        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def worker_argv(job_id: int) -> list[str]:
    return [sys.executable, "-m", "datatune_core.jobs", str(job_id)]


def _spawn(store: Store, job_id: int) -> int:
    log_dir = store.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["DATATUNE_HOME"] = str(store.home)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.getcwd(), env.get("PYTHONPATH", "")) if p)
    with open(log_dir / f"job-{job_id}.log", "ab") as fh:
        proc = subprocess.Popen(worker_argv(job_id), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, close_fds=True)
    store.update_job(job_id, pid=proc.pid, heartbeat_at=time.time())
    return proc.pid


def start_job(store: Store, kind: str, config: dict | None = None, project_id: int | None = None,
              total: int | None = None, background: bool = True) -> int:
    """Create a job and start its worker process (or run it here when `background` is False)."""
    resolve_kind(kind)  # fail early on an unknown kind
    job_id = store.create_job(kind, config or {}, project_id=project_id, total=total)
    if background:
        _spawn(store, job_id)
    else:
        run_job(store, job_id)
    return job_id


def run_job(store: Store, job_id: int) -> Job:
    """Run a job in this process until it ends; returns its final state."""
    job = store.get_job(job_id)
    if job.status == "done":
        return job
    store.update_job(job_id, status="running", pid=os.getpid(), started_at=job.started_at or time.time(),
                     heartbeat_at=time.time(), error=None, finished_at=None)
    stop = threading.Event()

    def beat() -> None:
        hb_store = Store(store.db_path)
        while not stop.wait(HEARTBEAT_S):
            try:
                hb_store.update_job(job_id, heartbeat_at=time.time())
            except Exception:  # never let the heartbeat kill the worker
                pass
        hb_store.close()

    t = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{job_id}")
    t.start()
    ctx = JobContext(store=store, job=store.get_job(job_id))
    try:
        fn = resolve_kind(job.kind)
        result = fn(ctx)
        store.update_job(job_id, status="done", finished_at=time.time(), result=result if result is not None else {},
                         message="finished")
    except JobCancelled:
        store.update_job(job_id, status="cancelled", finished_at=time.time(), message="cancelled by the user")
    except JobPaused as e:
        store.update_job(job_id, status="paused", finished_at=time.time(), message=str(e) or "paused")
    except KeyboardInterrupt:
        store.update_job(job_id, status="interrupted", finished_at=time.time(), message="interrupted")
        raise
    except Exception as e:  # a failed job keeps its reason and the traceback in its log
        store.log(job_id, traceback.format_exc(), level="error")
        error, kind = job_error(e)
        store.update_job(job_id, status="failed", finished_at=time.time(), error=error, message=kind)
    finally:
        stop.set()
        t.join(timeout=5)
    return store.get_job(job_id)


def refresh_jobs(store: Store, stale_after_s: float = STALE_AFTER_S) -> list[int]:
    """Mark running jobs whose worker is gone (stale heartbeat, dead pid) as `interrupted`."""
    found = []
    now = time.time()
    for r in store.query("SELECT id, pid, heartbeat_at FROM jobs WHERE status IN ('running','queued')"):
        hb = r["heartbeat_at"] or 0
        if now - hb > stale_after_s and not _pid_alive(r["pid"]):
            store.update_job(r["id"], status="interrupted", finished_at=now,
                             message=f"worker stopped unexpectedly (no heartbeat for {int(now - hb)} s); resume to continue")
            found.append(r["id"])
    return found


def cancel_job(store: Store, job_id: int) -> Job:
    """Ask a job to stop; a job whose worker is gone is marked cancelled at once."""
    job = store.get_job(job_id)
    if job.is_terminal or job.status == "interrupted":
        if job.status != "done":
            store.update_job(job_id, status="cancelled", cancel_requested=1)
        return store.get_job(job_id)
    store.update_job(job_id, cancel_requested=1)
    if not _pid_alive(job.pid):
        store.update_job(job_id, status="cancelled", finished_at=time.time(), message="cancelled by the user")
    return store.get_job(job_id)


def kill_job(store: Store, job_id: int) -> None:
    """Hard stop (SIGKILL) of a job's worker process group; used for stuck workers and by tests."""
    job = store.get_job(job_id)
    if job.pid and _pid_alive(job.pid):
        try:
            os.killpg(os.getpgid(job.pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def continued_by(job: Job) -> int | None:
    """The job that took `job`'s remaining work over (it can then never be resumed itself), or None."""
    taker = (job.result or {}).get("continued_by") if job.status == "cancelled" else None
    return int(taker) if taker is not None else None


def resume_job(store: Store, job_id: int, background: bool = True) -> Job:
    """Start a stopped job again; its committed units are skipped."""
    refresh_jobs(store)
    job = store.get_job(job_id)
    resolve_kind(job.kind)  # a row whose kind is not registered never runs
    if job.status == "done":
        raise JobError(f"Job {job_id} is already done; nothing to resume.")
    taker = continued_by(job)
    if taker is not None:
        raise JobError(f"Job {job_id} was continued by job #{taker}, which does its remaining work; resume or "
                       f"check that one instead (`datatune jobs resume {taker}`).")
    if job.status in ("running", "queued") and _pid_alive(job.pid):
        raise JobError(f"Job {job_id} is still running (pid {job.pid}); cancel it first or wait.")
    store.update_job(job_id, status="queued", cancel_requested=0, error=None, finished_at=None,
                     message="resuming", heartbeat_at=time.time())
    if background:
        _spawn(store, job_id)
        return store.get_job(job_id)
    return run_job(store, job_id)


def wait_job(store: Store, job_id: int, timeout_s: float = 600.0, poll_s: float = 0.2) -> Job:
    """Block until a job reaches a terminal state (or `interrupted`), or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = store.get_job(job_id)
        if job.is_terminal or job.status == "interrupted":
            return job
        if job.status == "running" and not _pid_alive(job.pid) and job.pid != os.getpid():
            refresh_jobs(store, stale_after_s=0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"Job {job_id} still {job.status} after {timeout_s} s.")
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m datatune_core.jobs JOB_ID", file=sys.stderr)
        return 2
    store = Store.open(os.environ.get("DATATUNE_HOME"))
    job = run_job(store, int(args[0]))
    return 0 if job.status in ("done", "cancelled", "paused") else 1


if __name__ == "__main__":  # run the imported module, so kinds registered by plugins land in the one registry
    from datatune_core.jobs import main as _main

    sys.exit(_main())
