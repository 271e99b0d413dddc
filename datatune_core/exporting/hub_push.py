"""Pushing an exported folder (dataset, adapter, merged model, GGUF) to the Hugging Face Hub.

Needs a token (HF_TOKEN or `hf auth login`) and DATATUNE_HUB_ONLINE=1. A repo name that already exists is refused
unless the user asks to add a commit to it (`update=True`; CLI `--push-update`, app: "Add to the existing repo"), so
an export never lands silently on top of another model. Large and binary files go up through the Hub's LFS batch
protocol (the scripted test Hub speaks it; the real Hub may choose Xet storage when `hf_xet` is installed).

    >>> push_folder("exports/p/model-gguf", "alice/sentiment-gguf", "model")
    {"url": "https://huggingface.co/alice/sentiment-gguf", "commit": "…", "files": ["Modelfile", …]}
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from datatune_core.catalog.hub_session import endpoint, hub_message, online
from datatune_core.errors import UserError

REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def hub_token() -> str | None:
    tok = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if tok:
        return tok
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return None


def repo_url(repo_id: str, repo_type: str) -> str:
    return f"{endpoint()}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"


def check_push(repo_id: str, repo_type: str) -> str:
    """The token to push with; UserError naming the fix when the push cannot start."""
    from datatune_core.config import load_settings

    if repo_type not in ("dataset", "model"):
        raise UserError("repo_type must be dataset or model.")
    if not REPO_ID.fullmatch(repo_id or ""):
        raise UserError(f"{repo_id!r} is not a Hub repo id; use 'user/name'.")
    token = hub_token()
    if not token:
        raise UserError("No Hugging Face token configured: set HF_TOKEN (or run `huggingface-cli login`) to push.")
    if not load_settings().hub_online:
        raise UserError("The Hub is off (offline mode). Set DATATUNE_HUB_ONLINE=1 to push.")
    return token


def push_folder(folder: str | Path, repo_id: str, repo_type: str = "model", *, private: bool = True,
                update: bool = False, message: str | None = None) -> dict:
    """Create `repo_id` (refused if it exists, unless `update`) and upload `folder` as one commit."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = check_push(repo_id, repo_type)
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise UserError(f"Nothing to push: {folder} is not an exported folder. Export first.")
    kind = "dataset" if repo_type == "dataset" else "model"
    with online():
        api = HfApi(token=token, endpoint=endpoint())
        try:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=False)
        except HfHubHTTPError as e:
            if e.response is None or e.response.status_code != 409:
                raise UserError(hub_message(e, f"create the Hub repo {repo_id}", repo_id, kind)) from e
            if not update:
                raise UserError(f"A Hub {kind} repo named {repo_id!r} already exists. Pick another name, or choose "
                                "to add a new commit to it (CLI: --push-update; app: \"Add to the existing repo\").") \
                    from e
        except Exception as e:
            raise UserError(hub_message(e, f"create the Hub repo {repo_id}", repo_id, kind)) from e
        try:
            info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                     commit_message=message or f"Upload {folder.name} from DataTune Studio")
        except Exception as e:
            raise UserError(hub_message(e, f"upload {folder.name} to {repo_id}", repo_id, kind)) from e
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return {"url": repo_url(repo_id, repo_type), "commit": getattr(info, "oid", None), "files": files}
