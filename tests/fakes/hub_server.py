"""A scripted Hugging Face Hub on 127.0.0.1 for tests (a test double, not a Hub).

Speaks the wire format the real `huggingface_hub` and `datasets` clients use, so they talk to it via `HF_ENDPOINT`:
dataset search (GET /api/datasets), repo info (/api/{datasets,models}/ID[/revision/REV]), file listing
(/tree/REV[/PATH], POST /paths-info/REV), file download with HEAD + byte ranges (/[datasets/]ID/resolve/REV/PATH),
`whoami-v2`, and the upload protocol: POST /api/validate-yaml (the card's metadata), POST /api/repos/create, /preupload/REV, the git-LFS batch endpoint
(/[datasets/]ID.git/info/lfs/objects/batch, "basic" transfer to PUT /lfs-upload/OID) and the NDJSON /commit/REV.
Xet storage is not spoken: clients must run with HF_HUB_DISABLE_XET (the LFS path), see docs/guide/hub.md.

Errors are the Hub's: 401 without a valid token where one is needed, gated repos (401/403 with X-Error-Code
GatedRepo unless the token was granted access), 404 RepoNotFound / EntryNotFound / RevisionNotFound, 409 on a
create of an existing repo, 403 for a namespace the token does not own. Faults are injected per path:
`srv.fail("train-00001", "slow")` makes the next request whose path contains that text sleep past the client's
timeout; kinds: 404, 429, 500, 503, slow, malformed (half a JSON body).

    srv = HubServer(token="hf_good", user="alice")
    srv.add_dataset("acme/reviews", {"data/train-00000.parquet": parquet_bytes(rows)}, card=card_yaml + "text")
    with srv:  # HF_ENDPOINT=srv.url
        ...
        assert srv.repos[("model", "alice/tuned")].files["README.md"].startswith(b"---")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .hub_repo import Repo, _git_oid, card_text, parquet_bytes  # noqa: F401 (tests import them from here)
from .loopback import LoopbackServer

FAULTS = ("404", "429", "500", "503", "slow", "malformed")
PREFIX = {"dataset": "datasets/", "model": "", "space": "spaces/"}


class HubServer(LoopbackServer):
    FAULT_KINDS = FAULTS
    thread_name = "hub-server"

    def __init__(self, *, token: str | None = "hf_test_token", user: str = "tester", slow_s: float = 3.0,
                 lfs_threshold: int = 10 * 1024 * 1024, host: str = "127.0.0.1", port: int = 0):
        super().__init__(self._handler_class(), host=host, port=port)
        self.token, self.user, self.slow_s, self.lfs_threshold = token, user, slow_s, lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # LFS objects uploaded (sha256 -> bytes)
        self._path_faults: list[tuple[str, deque[str]]] = []
        self.sleeps: list[float] = []  # the client's backoff waits, when the fixture records them

    # ------------------------------------------------------------------ scripting
    def add_dataset(self, repo_id: str, files: dict[str, bytes | str], **kw: Any) -> Repo:
        return self.add_repo(repo_id, "dataset", files, **kw)

    def add_repo(self, repo_id: str, repo_type: str, files: dict[str, bytes | str], **kw: Any) -> Repo:
        data = {p: (v.encode() if isinstance(v, str) else v) for p, v in files.items()}
        repo = Repo(repo_id, repo_type, data, **kw)
        repo.lfs |= {p for p in data if p.endswith((".parquet", ".safetensors", ".gguf", ".bin"))}
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def fail(self, match: str, *kinds: str) -> None:
        """The next requests whose path contains `match` fail with these faults, in order."""
        for k in kinds:
            if k not in FAULTS:
                raise ValueError(f"unknown fault {k!r}; one of {FAULTS}")
        with self._lock:
            self._path_faults.append((match, deque(kinds)))

    def _fault_for(self, path: str) -> str | None:
        with self._lock:
            for match, q in self._path_faults:
                if match in path and q:
                    return q.popleft()
            return self._queue.popleft() if self._queue else None

    def requests(self, method: str | None = None, contains: str = "") -> list[dict]:
        return [e for e in self.log if (method is None or e["method"] == method) and contains in e["path"]]

    # ------------------------------------------------------------------ access
    def _token_of(self, headers: Any) -> str | None:
        auth = headers.get("authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _read_denied(self, repo: Repo, token: str | None) -> tuple[int, str, str] | None:
        if repo.private and token != self.token:
            return 404, "RepoNotFound", "Repository not found"
        if repo.gated and token not in repo.granted:
            kind = "dataset" if repo.repo_type == "dataset" else "model"
            msg = (f"Access to {kind} {repo.repo_id} is restricted. You must have access to it and be "
                   "authenticated to access it. Please log in.")
            return (401 if token is None else 403), "GatedRepo", msg
        return None

    # ------------------------------------------------------------------ handler
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any = None, headers: dict | None = None, raw: bytes | None = None,
                      ctype: str = "application/json", head: bool = False) -> None:
                data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    if not head:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _error(self, status: int, message: str, code: str | None = None, head: bool = False,
                       headers: dict | None = None) -> None:
                h = {"x-error-message": message, **(headers or {})}
                if code:
                    h["x-error-code"] = code
                self._send(status, {"error": message}, h, head=head)

            def _body(self) -> bytes:
                n = int(self.headers.get("content-length") or 0)
                return self.rfile.read(n) if n else b""

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                path, query = unquote(url.path), parse_qs(url.query)
                body = self._body() if method in ("POST", "PUT") else b""
                token = srv._token_of(self.headers)
                entry = {"method": method, "path": path, "query": query, "token": token, "status": None,
                         "fault": None, "range": self.headers.get("range"), "t": time.time()}
                srv.log.append(entry)
                fault = srv._fault_for(path)
                entry["fault"] = fault
                head = method == "HEAD"
                if fault == "slow":
                    time.sleep(srv.slow_s)
                elif fault in ("404", "429", "500", "503"):
                    entry["status"] = int(fault)
                    hdr = {"retry-after": "1"} if fault == "429" else {}
                    return self._error(int(fault), f"injected {fault}", head=head, headers=hdr)
                status = srv._dispatch(self, method, path, query, body, token, head, fault == "malformed")
                entry["status"] = status

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_HEAD(self) -> None:  # noqa: N802
                self._route("HEAD")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._route("PUT")

        return Handler

    def _json(self, h: Any, status: int, body: Any, malformed: bool = False, headers: dict | None = None) -> int:
        raw = json.dumps(body).encode()
        h._send(status, raw=raw[: len(raw) // 2] if malformed else raw, headers=headers)
        return status

    def _dispatch(self, h: Any, method: str, path: str, q: dict, body: bytes, token: str | None, head: bool,
                  malformed: bool) -> int:
        if path == "/api/whoami-v2":
            if token is None or token != self.token:
                h._error(401, "Invalid credentials in Authorization header")
                return 401
            return self._json(h, 200, {"type": "user", "name": self.user, "orgs": [],
                                       "auth": {"type": "access_token", "accessToken": {"role": "write"}}}, malformed)
        if path == "/api/validate-yaml" and method == "POST":
            return self._validate_yaml(h, json.loads(body or b"{}"), malformed)
        if path == "/api/datasets" and method == "GET":
            return self._search(h, q, malformed)
        if path == "/api/repos/create" and method == "POST":
            return self._create(h, json.loads(body or b"{}"), token, malformed)
        if path.startswith("/lfs-upload/") and method == "PUT":
            self.blobs[path.rsplit("/", 1)[1]] = body
            h._send(200)
            return 200
        m = re.fullmatch(r"/api/(datasets|models)/([^/]+/[^/]+?)(?:/(revision|tree|paths-info|preupload|commit)"
                         r"/([^/]+)(/.*)?)?", path)
        if m:
            rtype, rid, op, rev, rest = m.group(1)[:-1], m.group(2), m.group(3), m.group(4), m.group(5)
            return self._api(h, method, rtype, rid, op, rev, (rest or "").lstrip("/"), q, body, token, malformed)
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+?)\.git/info/lfs/objects/batch", path)
        if m and method == "POST":
            return self._lfs_batch(h, "dataset" if m.group(1) else "model", m.group(2), json.loads(body), token)
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            return self._resolve(h, "dataset" if m.group(1) else "model", m.group(2), m.group(3), m.group(4),
                                 token, head)
        h._error(404, f"no route for {method} {path} (scripted Hub)")
        return 404

    # ------------------------------------------------------------------ read side
    def _search(self, h: Any, q: dict, malformed: bool) -> int:
        """Like the Hub's `search=`: every term is contained in the dataset id (case-insensitive)."""
        terms = [t.lower() for t in q.get("search", [])]
        limit = int(q.get("limit", ["1000"])[0])
        found = [r for (t, _), r in sorted(self.repos.items()) if t == "dataset" and not r.private
                 and all(x in r.repo_id.lower() for x in terms)]
        if q.get("sort", [""])[0] == "downloads":
            found.sort(key=lambda r: -r.downloads)
        full = q.get("full", ["false"])[0].lower() == "true"
        return self._json(h, 200, [r.info(full) for r in found[:limit]], malformed)

    def _repo(self, rtype: str, rid: str) -> Repo | None:
        return self.repos.get((rtype, rid))

    def _api(self, h: Any, method: str, rtype: str, rid: str, op: str | None, rev: str | None, rest: str,
             q: dict, body: bytes, token: str | None, malformed: bool) -> int:
        repo = self._repo(rtype, rid)
        if op in ("preupload", "commit"):
            if token != self.token:
                h._error(401, "Invalid credentials in Authorization header")
                return 401
        if repo is None or (repo.private and token != self.token):
            h._error(404, "Repository not found", "RepoNotFound")
            return 404
        if rev is not None and unquote(rev) not in ("main", repo.sha):
            h._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return 404
        if op in (None, "revision") and method == "GET":
            return self._json(h, 200, repo.info(True), malformed)
        if op == "tree" and method == "GET":
            prefix = rest.rstrip("/")
            recursive = q.get("recursive", ["false"])[0].lower() == "true"
            paths = [p for p in sorted(repo.files) if not prefix or p.startswith(prefix + "/")]
            out, dirs = [], set()
            for p in paths:
                tail = p[len(prefix) + 1:] if prefix else p
                if "/" in tail and not recursive:
                    d = (prefix + "/" if prefix else "") + tail.split("/", 1)[0]
                    if d not in dirs:
                        dirs.add(d)
                        out.append({"type": "directory", "path": d, "size": 0, "oid": _git_oid(d.encode())})
                    continue
                if recursive:  # the directories on the way
                    parts = tail.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        d = (prefix + "/" if prefix else "") + "/".join(parts[:i])
                        if d not in dirs:
                            dirs.add(d)
                            out.append({"type": "directory", "path": d, "size": 0, "oid": _git_oid(d.encode())})
                out.append(repo.entry(p))
            if prefix and not paths:
                h._error(404, f"{prefix} does not exist", "EntryNotFound")
                return 404
            return self._json(h, 200, out, malformed)
        if op == "paths-info" and method == "POST":
            form = parse_qs(body.decode())
            wanted = form.get("paths", [])
            out = [repo.entry(p) for p in wanted if p in repo.files]
            out += [{"type": "directory", "path": p, "size": 0, "oid": _git_oid(p.encode())} for p in wanted
                    if p not in repo.files and any(f.startswith(p.rstrip("/") + "/") for f in repo.files)]
            return self._json(h, 200, out, malformed)
        if op == "preupload" and method == "POST":
            files = json.loads(body).get("files", [])
            out = [{"path": f["path"], "shouldIgnore": False, "oid": None,
                    "uploadMode": "lfs" if f["size"] >= self.lfs_threshold or
                    b"\0" in base64.b64decode(f["sample"]) else "regular"} for f in files]
            return self._json(h, 200, {"files": out, "commitOid": repo.sha}, malformed)
        if op == "commit" and method == "POST":
            return self._commit(h, repo, body, malformed)
        h._error(405, f"{method} not allowed here")
        return 405

    def _resolve(self, h: Any, rtype: str, rid: str, rev: str, fpath: str, token: str | None, head: bool) -> int:
        repo = self._repo(rtype, rid)
        if repo is None or (repo.private and token != self.token):
            h._error(404, "Repository not found", "RepoNotFound", head=head)
            return 404
        denied = self._read_denied(repo, token)
        if denied:
            h._error(denied[0], denied[2], denied[1], head=head)
            return denied[0]
        if unquote(rev) not in ("main", repo.sha):
            h._error(404, f"Invalid rev id: {rev}", "RevisionNotFound", head=head)
            return 404
        if fpath not in repo.files:
            h._error(404, f"Entry not found: {fpath}", "EntryNotFound", head=head)
            return 404
        data = repo.files[fpath]
        etag = hashlib.sha256(data).hexdigest() if fpath in repo.lfs else _git_oid(data)
        hdr = {"x-repo-commit": repo.sha, "etag": f'"{etag}"', "accept-ranges": "bytes"}
        if fpath in repo.lfs:
            hdr["x-linked-etag"], hdr["x-linked-size"] = f'"{etag}"', str(len(data))
        rng = h.headers.get("range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m and not head:
            if m.group(1):
                start = int(m.group(1))
                end = min(len(data) - 1, int(m.group(2))) if m.group(2) else len(data) - 1
            else:  # a suffix range: the last N bytes
                start, end = max(0, len(data) - int(m.group(2))), len(data) - 1
            if start >= len(data):
                h._send(416, headers={"content-range": f"bytes */{len(data)}"})
                return 416
            hdr["content-range"] = f"bytes {start}-{end}/{len(data)}"
            h._send(206, raw=data[start:end + 1], headers=hdr, ctype="application/octet-stream")
            return 206
        h._send(200, raw=data, headers=hdr, ctype="application/octet-stream", head=head)
        return 200

    # ------------------------------------------------------------------ write side
    def _create(self, h: Any, body: dict, token: str | None, malformed: bool) -> int:
        if token is None or token != self.token:
            h._error(401, "Invalid credentials in Authorization header")
            return 401
        ns = body.get("organization") or self.user
        rid, rtype = f"{ns}/{body['name']}", body.get("type") or "model"
        if ns != self.user:
            h._error(403, f"You don't have the rights to create a {rtype} under the namespace \"{ns}\"")
            return 403
        url = f"{self.url}/{PREFIX[rtype]}{rid}"
        if (rtype, rid) in self.repos:
            h._error(409, "You already created this model repo", headers={"content-type": "application/json"})
            return 409
        private = bool(body.get("private")) or body.get("visibility") == "private"
        self.repos[(rtype, rid)] = Repo(rid, rtype, private=private)
        return self._json(h, 200, {"url": url, "name": rid, "id": hashlib.md5(rid.encode()).hexdigest()[:24]},
                          malformed)

    def _validate_yaml(self, h: Any, body: dict, malformed: bool) -> int:
        import yaml

        m = re.match(r"---\n(.*?)\n---", body.get("content") or "", re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else {}
        except yaml.YAMLError as e:
            return self._json(h, 400, {"errors": [{"message": f"YAML: {str(e).splitlines()[0]}"}], "warnings": []})
        warn = [] if meta else [{"message": "empty or missing yaml metadata in repo card"}]
        return self._json(h, 200, {"errors": [], "warnings": warn}, malformed)

    def _lfs_batch(self, h: Any, rtype: str, rid: str, body: dict, token: str | None) -> int:
        if token != self.token:
            h._error(401, "Invalid credentials in Authorization header")
            return 401
        if self._repo(rtype, rid) is None:
            h._error(404, "Repository not found", "RepoNotFound")
            return 404
        objs = []
        for o in body.get("objects", []):
            item = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.blobs:
                item["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}", "expires_in": 3600}}
            objs.append(item)
        h._send(200, raw=json.dumps({"transfer": "basic", "objects": objs}).encode(),
                ctype="application/vnd.git-lfs+json")
        return 200

    def _commit(self, h: Any, repo: Repo, body: bytes, malformed: bool) -> int:
        lines = [json.loads(x) for x in body.splitlines() if x.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        changed: dict[str, bytes] = {}
        for x in lines:
            v = x["value"]
            if x["key"] == "file":
                changed[v["path"]] = base64.b64decode(v["content"]) if v.get("encoding") == "base64" \
                    else v["content"].encode()
            elif x["key"] == "lfsFile":
                if v["oid"] not in self.blobs:
                    h._error(422, f"LFS object {v['oid']} was never uploaded")
                    return 422
                changed[v["path"]] = self.blobs[v["oid"]]
                repo.lfs.add(v["path"])
            elif x["key"] == "deletedFile":
                repo.files.pop(v["path"], None)
        repo.files.update(changed)
        repo.commits.append({"summary": header.get("summary"), "files": sorted(changed)})
        url = f"{self.url}/{PREFIX[repo.repo_type]}{repo.repo_id}/commit/{repo.sha}"
        return self._json(h, 200, {"success": True, "commitOid": repo.sha, "commitUrl": url}, malformed)




class _RecordedSleeps:
    """`time` for huggingface_hub's retry loop: its backoff waits are recorded, not slept (tests stay fast)."""

    def __init__(self, into: list[float]):
        self._into = into

    def sleep(self, s: float) -> None:
        self._into.append(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


try:  # the pytest fixture (import it into a test module or conftest to use it)
    import pytest

    @pytest.fixture
    def hub_server(tmp_path, monkeypatch):
        """A fresh scripted Hub; the process points at it (HF_ENDPOINT, DATATUNE_HUB_ONLINE=1, 0.5 s timeouts, a
        private HF cache, Xet off) and huggingface_hub's backoff waits are recorded instead of slept."""
        import datasets.config as dc
        import huggingface_hub.constants as hc
        import huggingface_hub.utils._http as hhttp

        with HubServer(token="hf_good", user="alice", slow_s=1.5) as srv:
            monkeypatch.setenv("HF_ENDPOINT", srv.url)
            monkeypatch.setenv("DATATUNE_HUB_ONLINE", "1")
            monkeypatch.setenv("DATATUNE_HUB_TIMEOUT", "0.5")
            for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
                monkeypatch.delenv(k, raising=False)
            monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
            monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
            monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")  # and for job workers started from the test
            monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
            monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
            monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "hf-token"))
            monkeypatch.setattr(dc, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
            monkeypatch.setattr(hhttp, "time", _RecordedSleeps(srv.sleeps))
            yield srv
except ImportError:  # pragma: no cover
    pass
