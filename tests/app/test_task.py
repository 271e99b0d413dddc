"""Task page: every edit is stored at once, examples add/remove, validation messages, demo task, provider
settings (the key is never shown), and other tabs' changes are picked up."""

from __future__ import annotations

import pytest

from datatune_core.config import shared_dir

from .conftest import button, open_app, texts

TASK = "app_pages/1_Task.py"


def _area(at, label):
    found = [a for a in at.text_area if a.label == label]
    assert found, [a.label for a in at.text_area]
    return found[0]


def test_edits_are_saved_to_the_store_immediately(app_home, store):
    pid = store.create_project("T")
    at = open_app(TASK, project=pid)
    _area(at, "Instruction").input("Say whether the review is positive or negative.").run()
    assert store.get_project(pid).instruction == "Say whether the review is positive or negative."
    button(at, "Add example").click().run()
    _area(at, "Example 1 · input").input("Great film!").run()
    _area(at, "Example 1 · expected output").input("positive").run()
    assert store.get_project(pid).examples == [{"input": "Great film!", "output": "positive"}]
    # a fresh session (a refresh) shows the same task
    at2 = open_app(TASK, project=pid)
    assert _area(at2, "Example 1 · input").value == "Great film!"


def test_add_remove_examples_and_validation_message(app_home, store):
    pid = store.create_project("T", "Classify it.", [{"input": "a", "output": "x"}, {"input": "b", "output": "y"}])
    at = open_app(TASK, project=pid)
    assert "The task is ready" in texts(at)
    button(at, "Add example").click().run()
    assert len(store.get_project(pid).examples) == 3
    assert "Example 3 is empty" in " ".join(w.value for w in at.warning)
    _area(at, "Example 3 · input").input("c").run()
    assert "Example 3 has no output" in " ".join(w.value for w in at.warning)
    # remove the first example (the delete buttons have no label, only an icon and help)
    dels = [b for b in at.button if (b.help or "").startswith("Remove example")]
    assert len(dels) == 3
    dels[0].click().run()
    assert [e["input"] for e in store.get_project(pid).examples] == ["b", "c"]
    assert not at.exception


def test_empty_instruction_blocks_next_step(app_home, store):
    pid = store.create_project("T")
    at = open_app(TASK, project=pid)
    assert "instruction is empty" in " ".join(w.value for w in at.warning)
    assert "Find existing datasets" not in texts(at)


def test_change_from_another_tab_is_picked_up(app_home, store):
    pid = store.create_project("T", "Old text.")
    at = open_app(TASK, project=pid)
    store.update_project(pid, instruction="New text from tab 2.")
    at.run()
    assert _area(at, "Instruction").value == "New text from tab 2."


@pytest.mark.skipif(shared_dir() is None, reason="needs ../shared (BIG-bench tasks)")
def test_load_demo_task_sets_instruction_examples_and_eval_task(app_home, store):
    pid = store.create_project("Demo")
    at = open_app(TASK, project=pid)
    at.selectbox(key="dt_demo_unit").select("cause_and_effect/two_sentences").run()
    button(at, "Load demo task").click().run()
    assert not at.exception
    p = store.get_project(pid)
    assert p.eval_task == "cause_and_effect/two_sentences"
    assert len(p.examples) == 2 and p.instruction
    assert _area(at, "Instruction").value == p.instruction
    assert at.selectbox(key=f"dt_eval_{pid}").value == "cause_and_effect/two_sentences"
    at.run()  # the evaluation task survives the next rerun
    assert store.get_project(pid).eval_task == "cause_and_effect/two_sentences"


def test_demo_task_error_shown_with_fix_when_shared_missing(app_home, store, monkeypatch, tmp_path):
    monkeypatch.setenv("DATATUNE_SHARED", str(tmp_path / "nowhere"))
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(tmp_path / "nowhere"))
    pid = store.create_project("NoShared", "x")
    at = open_app(TASK, project=pid)
    assert "demo tasks are unavailable" in texts(at)
    assert not [b for b in at.button if b.label == "Load demo task"]


def test_provider_settings_saved_and_key_never_shown(app_home, store, monkeypatch):
    secret = "sk-ant-test-SECRET-value-123"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    pid = store.create_project("P", "x")
    at = open_app(TASK, project=pid)
    assert "Claude API key:** set" in texts(at)
    at.radio(key=f"dt_provider_{pid}").set_value("openai").run()
    assert store.get_project(pid).settings["provider"] == "openai"
    url = [t for t in at.text_input if t.label == "Server URL"][0]
    url.input("ftp://bad")
    button(at, "Save server settings").click().run()
    assert "must start with http" in " ".join(e.value for e in at.error)
    [t for t in at.text_input if t.label == "Server URL"][0].input("http://127.0.0.1:9/v1")
    [t for t in at.text_input if t.label == "Model name"][0].input("tiny-model")
    button(at, "Save server settings").click().run()
    s = store.get_project(pid).settings
    assert s["openai_base_url"] == "http://127.0.0.1:9/v1" and s["openai_model"] == "tiny-model"
    assert "127.0.0.1:9" in texts(at)  # the status uses the project's server
    at.number_input(key=f"dt_budget_{pid}").set_value(2.5).run()
    assert store.get_project(pid).settings["budget_usd"] == 2.5
    # the connection test against a closed port fails with a message, not a traceback
    button(at, "Test connection").click().run()
    assert not at.exception
    everything = texts(at) + " ".join(str(e.value) for e in at.error) + str(store.get_project(pid).settings)
    assert secret not in everything
    db = (app_home / "workspace.db").read_bytes()
    assert secret.encode() not in db


def test_embedded_model_note_without_key(app_home, store):
    pid = store.create_project("Local", "x")
    at = open_app(TASK, project=pid)
    t = texts(at)
    assert "not set" in t and "SmolLM2" in t


def test_model_and_batching_settings_are_stored(app_home, store):
    pid = store.create_project("T", "Classify it.", [{"input": "a", "output": "x"}])
    at = open_app(TASK, project=pid)
    [cheap] = [t for t in at.text_input if t.label == "Model for per-row work"]
    cheap.input("my-cheap-model").run()
    [strong] = [t for t in at.text_input if t.label == "Model for ranking and planning"]
    strong.input("my-strong-model").run()
    [batches] = [c for c in at.checkbox if c.label.startswith("Send bulk jobs through the Message Batches API")]
    batches.check().run()
    s = store.get_project(pid).settings
    assert (s["cheap_model"], s["strong_model"], s["use_batches"]) == ("my-cheap-model", "my-strong-model", True)
    # the LLM layer picks them up for this project's jobs
    from datatune_core.llm import get_client

    client = get_client(store, project_id=pid, provider="anthropic", api_key="k", base_url="http://127.0.0.1:9")
    assert client.config.models == {"cheap": "my-cheap-model", "strong": "my-strong-model"}
    assert client.config.use_batches is True
    cheap.set_value("").run()
    assert "cheap_model" not in store.get_project(pid).settings


def test_embedded_model_reply_limit_is_a_project_setting(app_home, store):
    pid = store.create_project("L", "Classify it.", [{"input": "a", "output": "x"}])
    at = open_app(TASK, project=pid)
    assert "replies up to 256 tokens" in texts(at)  # the default, from the model's 4,096-token window
    at.number_input(key=f"dt_localmax_{pid}").set_value(192).run()
    assert store.get_project(pid).settings["local_max_output_tokens"] == 192
    assert "replies up to 192 tokens" in texts(at)
    from datatune_core.llm import get_client

    assert get_client(store, project_id=pid).provider.capabilities.max_output_tokens == 192
    at.number_input(key=f"dt_localmax_{pid}").set_value(256).run()  # back to the default: the setting is removed
    assert "local_max_output_tokens" not in store.get_project(pid).settings
