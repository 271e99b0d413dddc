"""Hub push against the scripted Hub on 127.0.0.1: what arrives (regular files in the commit, binaries through the
LFS batch + upload), and plain sentences for a refused token, a name clash, a foreign namespace and a 5xx."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datatune_core.errors import UserError
from datatune_core.exporting.hub_push import push_folder
from tests.fakes.hub_server import hub_server  # noqa: F401 (fixture)

runner = CliRunner()


@pytest.fixture
def pusher(hub_server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    return hub_server


def model_folder(tmp_path: Path) -> Path:
    """An exported merged model as the export writes it: safetensors weights, config, tokenizer bits, card."""
    import torch
    from safetensors.torch import save_file

    out = tmp_path / "model-merged"
    out.mkdir()
    save_file({"w": torch.arange(600, dtype=torch.float32).reshape(20, 30)}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 30}))
    (out / "README.md").write_text("---\nlicense: apache-2.0\nbase_model: tiny\n---\n# tuned\nMerged by DataTune.\n")
    (out / "sub").mkdir()
    (out / "sub" / "notes.txt").write_text("nested file\n")
    return out


def _arrived(srv, repo_type: str, repo_id: str, folder: Path) -> None:
    repo = srv.repos[(repo_type, repo_id)]
    local = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert repo.files == local  # every file, byte for byte, and nothing else


def test_push_a_model_folder_sends_binaries_through_lfs(pusher, tmp_path):
    folder = model_folder(tmp_path)
    res = push_folder(folder, "alice/tuned", "model", private=True)
    assert res["url"] == f"{pusher.url}/alice/tuned" and res["commit"]
    _arrived(pusher, "model", "alice/tuned", folder)
    repo = pusher.repos[("model", "alice/tuned")]
    assert repo.private and repo.lfs == {"model.safetensors"} and len(repo.commits) == 1
    assert repo.commits[0]["summary"] == "Upload model-merged from DataTune Studio"
    assert len(pusher.requests("PUT", "/lfs-upload/")) == 1  # the weights went through the LFS upload
    assert len(pusher.requests("POST", ".git/info/lfs/objects/batch")) == 1
    api = [e for e in pusher.log if e["method"] == "POST" and "validate-yaml" not in e["path"]]
    assert len(api) == 4 and {e["token"] for e in api} == {"hf_good"}  # create, preupload, LFS batch, commit
    assert pusher.requests("PUT")[0]["token"] is None  # the token never goes to the storage upload URL


def test_a_name_that_exists_is_refused_unless_updating(pusher, tmp_path):
    folder = model_folder(tmp_path)
    push_folder(folder, "alice/tuned", "model")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tuned, second export\n")
    with pytest.raises(UserError) as ei:
        push_folder(folder, "alice/tuned", "model")
    msg = str(ei.value)
    assert "already exists" in msg and "Pick another name" in msg and "--push-update" in msg
    assert len(pusher.repos[("model", "alice/tuned")].commits) == 1  # nothing was uploaded
    push_folder(folder, "alice/tuned", "model", update=True)
    repo = pusher.repos[("model", "alice/tuned")]
    assert len(repo.commits) == 2 and b"second export" in repo.files["README.md"]
    assert len(pusher.requests("PUT", "/lfs-upload/")) == 1  # the unchanged weights were not sent again


def test_an_invalid_token_is_a_plain_sentence(pusher, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_expired")
    with pytest.raises(UserError) as ei:
        push_folder(model_folder(tmp_path), "alice/tuned", "model")
    msg = str(ei.value)
    assert "refused the token" in msg and "HF_TOKEN" in msg and "Error" not in msg
    assert ("model", "alice/tuned") not in pusher.repos


def test_a_namespace_the_token_does_not_own_is_a_plain_sentence(pusher, tmp_path):
    with pytest.raises(UserError) as ei:
        push_folder(model_folder(tmp_path), "bigcorp/tuned", "model")
    assert "refused access to 'bigcorp/tuned'" in str(ei.value) and "write" in str(ei.value)


def test_a_server_error_during_the_commit_is_retried(pusher, tmp_path):
    folder = model_folder(tmp_path)
    pusher.fail("/preupload/", "500")
    pusher.fail("/lfs-upload/", "503")
    push_folder(folder, "alice/tuned", "model")
    _arrived(pusher, "model", "alice/tuned", folder)
    assert pusher.sleeps  # the client backed off before asking again
    pusher.fail("/commit/", *["500"] * 10)  # a commit that keeps failing: the user reads why
    with pytest.raises(UserError) as ei:
        push_folder(folder, "alice/tuned", "model", update=True)
    assert "server error (500)" in str(ei.value) and "upload model-merged to alice/tuned" in str(ei.value)


def test_push_refuses_before_any_request_when_offline_or_tokenless(pusher, tmp_path, monkeypatch):
    folder = model_folder(tmp_path)
    monkeypatch.setenv("DATATUNE_HUB_ONLINE", "0")
    with pytest.raises(UserError, match="DATATUNE_HUB_ONLINE=1"):
        push_folder(folder, "alice/tuned")
    monkeypatch.setenv("DATATUNE_HUB_ONLINE", "1")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(UserError, match="No Hugging Face token"):
        push_folder(folder, "alice/tuned")
    with pytest.raises(UserError, match="Nothing to push"):
        monkeypatch.setenv("HF_TOKEN", "hf_good")
        push_folder(tmp_path / "missing", "alice/tuned")
    assert not [e for e in pusher.log if e["path"] != "/api/agent-harnesses"]


def test_cli_exports_and_pushes_a_dataset(pusher, store, tmp_path):
    from datatune_core.catalog.records import add_local_dataset
    from datatune_core.cli import app
    from datatune_core.transformation.pipeline import TransformOptions
    from datatune_core.transformation.run import start_transform

    f = tmp_path / "colors.csv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        for i, (t, c) in enumerate([("tomato", "red"), ("lime", "green"), ("corn", "yellow"), ("jeans", "blue")] * 3):
            w.writerow([f"What color is a {t}? ({i})", c])
    pid = store.create_project("colors", "Name the color of the thing.",
                               [{"input": "What color is the sky?", "output": "blue"}])
    rec = add_local_dataset(store.home, f, name="colors", description="colors of things")
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config=rec.configs[0].name, decision="accepted")
    job = store.get_job(start_transform(store, pid, TransformOptions(use_llm=False, target_size=12),
                                        background=False))
    assert job.status == "done", job.error
    res = runner.invoke(app, ["export", "dataset", "-p", "colors", "--root", str(tmp_path / "exp"),
                              "--push", "alice/colors"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["url"] == f"{pusher.url}/datasets/alice/colors"
    _arrived(pusher, "dataset", "alice/colors", Path(out["dataset"]))
    repo = pusher.repos[("dataset", "alice/colors")]
    assert repo.files["README.md"].startswith(b"---") and b"configs:" in repo.files["README.md"]
    assert "data/train.jsonl" in repo.files and not repo.lfs  # text under 10 MB goes in the commit itself
    again = runner.invoke(app, ["export", "dataset", "-p", "colors", "--root", str(tmp_path / "exp"),
                                "--push", "alice/colors"])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    ok = runner.invoke(app, ["export", "dataset", "-p", "colors", "--root", str(tmp_path / "exp"),
                             "--push", "alice/colors", "--push-update"])
    assert ok.exit_code == 0, ok.output


def test_a_card_the_hub_refuses_is_a_plain_sentence(pusher, tmp_path):
    folder = model_folder(tmp_path)
    (folder / "README.md").write_text("---\nlicense: [apache-2.0\n---\n# broken header\n")
    with pytest.raises(UserError) as ei:
        push_folder(folder, "alice/tuned", "model")
    assert "refused the card (README.md)" in str(ei.value) and "Fix its YAML header" in str(ei.value)
    assert not pusher.requests("POST", "/commit/")
