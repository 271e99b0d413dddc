"""`datatune llm ...`: status, configure, test, models, prices, ledger, estimate, ask and cache clear.

    datatune llm status                 # which provider, key set or not, models, capabilities, quality note
    datatune llm configure demo --provider local --local-max-output-tokens 256   # a project's LLM settings
    datatune llm test                   # one tiny request; says plainly what went wrong
    datatune llm estimate --rows 5000 --prompt "Classify: ..." --shared-prefix-file task.txt
    datatune llm ledger --project demo --summary
    datatune llm ask "Say hi" --no-cache         # DATATUNE_NO_CACHE=1 does the same for every command
"""

from __future__ import annotations

from pathlib import Path

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table, resolve_project


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="LLM providers, costs, the call ledger and the response cache.", no_args_is_help=True)
    app.add_typer(sub, name="llm")

    @sub.command("status")
    def status(as_json: bool = typer.Option(False, "--json"),
               project: str = typer.Option(None, help="Use this project's provider/model settings.")):
        """Which provider would be used, whether a key is set, the models per role and quality notes."""
        from datatune_core.llm import provider_status

        ps = {}
        if project:
            ps = resolve_project(open_store(), project).settings
        st = provider_status(project_settings=ps)
        if as_json:
            print_json(st)
            return
        typer.echo(f"provider:      {st['provider']}")
        typer.echo(f"cheap model:   {st['cheap_model']}   (per-row work)")
        typer.echo(f"strong model:  {st['strong_model']}   (rerank, planning)")
        if st.get("base_url"):
            typer.echo(f"base URL:      {st['base_url']}")
        typer.echo(f"Claude key:    {'set' if st['anthropic_key_set'] else 'not set'}")
        caps = st.get("capabilities") or {}
        typer.echo("capabilities:  " + ", ".join(f"{k}={v}" for k, v in caps.items()))
        typer.echo(st["message"])

    @sub.command("configure")
    def configure(project: str = typer.Argument(..., help="Project id or name."),
                  provider: str = typer.Option(None, help="anthropic, openai, local, or auto (as configured)."),
                  cheap_model: str = typer.Option(None, help="Model for per-row work (empty: the default)."),
                  strong_model: str = typer.Option(None, help="Model for ranking and planning (empty: default)."),
                  openai_base_url: str = typer.Option(None, help="The project's OpenAI-compatible server URL."),
                  openai_model: str = typer.Option(None, help="The model that server serves."),
                  budget: float = typer.Option(None, min=0, help="Budget for LLM calls in US$ (0: none)."),
                  batches: bool = typer.Option(None, "--batches/--no-batches",
                                               help="Send bulk jobs through the Message Batches API."),
                  local_max_output_tokens: int = typer.Option(
                      None, min=0, help="The embedded model's longest reply in tokens (0: the default, a sixteenth "
                                        "of its context window)."),
                  as_json: bool = typer.Option(False, "--json")):
        """Set a project's LLM settings (the Task page's Language model section) and print its status."""
        from datatune_core.errors import UserError
        from datatune_core.llm import provider_status
        from datatune_core.llm.local import output_limit

        store = open_store()
        p = resolve_project(store, project)
        if openai_base_url and not openai_base_url.startswith(("http://", "https://")):
            raise UserError("The server URL must start with http:// or https://, e.g. http://127.0.0.1:8000/v1.")
        if local_max_output_tokens:
            output_limit(local_max_output_tokens)  # a plain sentence when out of range
        given = {"provider": None if provider is None else ("" if provider == "auto" else provider),
                 "cheap_model": cheap_model, "strong_model": strong_model, "openai_base_url": openai_base_url,
                 "openai_model": openai_model, "budget_usd": budget, "use_batches": batches,
                 "local_max_output_tokens": local_max_output_tokens}
        settings = dict(p.settings or {})
        for k, v in given.items():
            if v is None:
                continue  # not given: unchanged
            if v in ("", 0) and v is not False:
                settings.pop(k, None)
            else:
                settings[k] = v.strip() if isinstance(v, str) else v
        store.update_project(p.id, settings=settings)
        st = provider_status(project_settings=settings)
        if as_json:
            print_json({"settings": settings, "status": st})
            return
        for k in sorted(given):
            if k in settings:
                typer.echo(f"{k}: {settings[k]}")
        typer.echo(st["message"])

    @sub.command("test")
    def test(provider: str = typer.Option(None, help="anthropic, openai or local (default: as configured).")):
        """Send one tiny request and report the result in plain words (exit code 1 on failure)."""
        from datatune_core.llm import test_connection

        ok, msg = test_connection(provider)
        typer.secho(("OK: " if ok else "FAILED: ") + msg, fg=typer.colors.GREEN if ok else typer.colors.RED,
                    err=not ok)
        raise typer.Exit(0 if ok else 1)

    @sub.command("models")
    def models(provider: str = typer.Option(None, help="anthropic, openai or local (default: as configured).")):
        """List the models the provider offers (the SDK's list when the API is unreachable)."""
        from datatune_core.llm import make_provider

        p = make_provider(provider)
        cheap, strong = p.default_model("cheap"), p.default_model("strong")
        for m in p.list_models():
            tag = " (default cheap)" if m == cheap else " (default strong)" if m == strong else ""
            typer.echo(m + tag)

    @sub.command("prices")
    def prices(as_json: bool = typer.Option(False, "--json")):
        """The price table in USD per million tokens (edit DATATUNE_HOME/prices.toml to override)."""
        from datatune_core.llm.prices import load_prices, user_prices_path

        t = load_prices()
        if as_json:
            print_json({"models": t.rows(), "batch_discount": t.batch_discount, "sources": t.sources})
            return
        print_table(t.rows(), ["model", "input", "output", "cache_write", "cache_read"])
        typer.echo(f"batch discount: x{t.batch_discount}   sources: {', '.join(t.sources)}")
        typer.echo(f"override: {user_prices_path()}")

    @sub.command("ledger")
    def ledger_(project: str = typer.Option(None, help="Project id or name."),
                job: int = typer.Option(None, help="Only this job's calls."),
                limit: int = typer.Option(30, help="How many recent calls to list."),
                summary: bool = typer.Option(False, "--summary", help="Totals per stage/model instead of calls."),
                as_json: bool = typer.Option(False, "--json")):
        """Recorded LLM calls: tokens, cache hits, cost, latency, status."""
        from datatune_core.llm import ledger

        store = open_store()
        pid = resolve_project(store, project).id if project else None
        if summary:
            s = ledger.ledger_summary(store, pid, job)
            if as_json:
                print_json(s)
                return
            print_table(s["by_stage"], ["stage", "provider", "model", "calls", "cache_hits", "input_tokens",
                                        "output_tokens", "cache_read_tokens", "cost_usd"])
            typer.echo(f"total: {s['calls']} calls, {s['cache_hits']} cache hits, ${s['cost_usd']:.4f}")
            return
        rows = ledger.list_calls(store, pid, job, limit)
        if as_json:
            print_json(rows)
            return
        print_table(rows, ["id", "stage", "model", "status", "from_cache", "batch", "input_tokens", "output_tokens",
                           "cache_read_tokens", "cost_usd", "latency_ms", "error"])

    @sub.command("estimate")
    def estimate(rows: int = typer.Option(..., help="How many requests the stage will send."),
                 prompt: str = typer.Option(None, help="A sample per-row prompt."),
                 prompt_file: Path = typer.Option(None, help="File with one sample prompt per line."),
                 shared_prefix_file: Path = typer.Option(None, help="The shared prefix (task spec, plan, examples)."),
                 max_tokens: int = typer.Option(300, help="max_tokens per request."),
                 output_tokens: float = typer.Option(None, help="Expected output tokens per request."),
                 role: str = typer.Option("cheap", help="cheap (per-row) or strong."),
                 provider: str = typer.Option(None), as_json: bool = typer.Option(False, "--json")):
        """Pre-run cost estimate: tokens counted on the sample, scaled to --rows, with/without caching and batches."""
        from datatune_core.llm import LLMRequest, get_client

        prompts = [prompt] if prompt else []
        if prompt_file:
            prompts += [ln for ln in prompt_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not prompts:
            raise typer.BadParameter("Give --prompt or --prompt-file with at least one sample prompt.")
        prefix = shared_prefix_file.read_text(encoding="utf-8") if shared_prefix_file else None
        client = get_client(provider=provider)
        sample = [LLMRequest(messages=[{"role": "user", "content": p}], shared_prefix=prefix, max_tokens=max_tokens,
                             role=role) for p in prompts[:20]]
        est = client.estimate(sample, rows, output_tokens=output_tokens)
        if as_json:
            print_json(est.to_dict())
        else:
            typer.echo(est.summary() + f" [tokens by {est.method}]")
            for n in est.notes:
                typer.echo(f"  note: {n}")

    @sub.command("ask")
    def ask(prompt: str, project: str = typer.Option(None), role: str = typer.Option("cheap"),
            max_tokens: int = typer.Option(256), provider: str = typer.Option(None),
            no_cache: bool = typer.Option(False, "--no-cache", help="Do not answer from the response cache.")):
        """Send one prompt through the client (cache, ledger, budget) and print the answer."""
        from datatune_core.llm import LLMRequest, get_client

        store = open_store()
        pid = resolve_project(store, project).id if project else None
        client = get_client(store, pid, provider=provider, stage="ask", use_cache=False if no_cache else None)
        res = client.complete(LLMRequest(messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                         role=role)).raise_for_error()
        typer.echo(res.text)
        typer.echo(f"[{res.provider}/{res.model} {'cache hit' if res.from_cache else 'live'}, "
                   f"{res.usage.input_tokens}+{res.usage.output_tokens} tokens, ${res.cost_usd:.6f}]", err=True)

    @sub.command("cache-clear")
    def cache_clear(provider: str = typer.Option(None, help="Only entries of this provider.")):
        """Empty the response cache (the ledger is kept)."""
        from datatune_core.llm.ledger import cache_clear as clear

        n = clear(open_store(), provider)
        typer.echo(f"Removed {n} cached responses.")
