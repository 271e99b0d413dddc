"""Workspace schema migrations: named, append-only, never edited once shipped.

Add a change as a new `(name, sql)` entry at the END of `MIGRATIONS`; `Store.migrate()` applies the ones a
database has not seen yet, in order, and records them in the `migrations` table.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            instruction TEXT NOT NULL DEFAULT '',
            examples_json TEXT NOT NULL DEFAULT '[]',
            settings_json TEXT NOT NULL DEFAULT '{}',
            eval_task TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE candidates (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            dataset_id TEXT NOT NULL,
            config TEXT,
            source TEXT,
            record_json TEXT NOT NULL DEFAULT '{}',
            fused_score REAL,
            bm25_score REAL,
            dense_score REAL,
            rerank_rank INTEGER,
            rerank_votes INTEGER,
            reason TEXT,
            excluded_reason TEXT,
            decision TEXT NOT NULL DEFAULT 'pending',
            created_at REAL NOT NULL,
            UNIQUE(project_id, dataset_id)
        );
        CREATE TABLE specs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            spec_json TEXT NOT NULL,
            author TEXT NOT NULL DEFAULT 'llm',
            created_at REAL NOT NULL,
            UNIQUE(project_id, version)
        );
        CREATE TABLE mappings (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            dataset_id TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL,
            roles_json TEXT NOT NULL,
            author TEXT NOT NULL DEFAULT 'llm',
            created_at REAL NOT NULL,
            UNIQUE(project_id, dataset_id, config, version)
        );
        CREATE TABLE plans (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            dataset_id TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL,
            plan_json TEXT NOT NULL,
            author TEXT NOT NULL DEFAULT 'llm',
            created_at REAL NOT NULL,
            UNIQUE(project_id, dataset_id, config, version)
        );
        CREATE TABLE rows (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            run_id TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT 'transformed',
            dataset_id TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL DEFAULT '',
            source_row_id TEXT NOT NULL DEFAULT '',
            source_json TEXT,
            input TEXT,
            output TEXT,
            status TEXT NOT NULL,
            reason TEXT,
            plan_version INTEGER,
            path TEXT,
            llm_call_id INTEGER,
            content_hash TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE(project_id, run_id, dataset_id, config, source_row_id)
        );
        CREATE INDEX rows_project_status ON rows(project_id, status);
        CREATE INDEX rows_project_source ON rows(project_id, dataset_id, config);
        CREATE INDEX rows_project_reason ON rows(project_id, reason);
        CREATE INDEX rows_hash ON rows(project_id, content_hash);
        CREATE TABLE row_edits (
            id INTEGER PRIMARY KEY,
            row_id INTEGER NOT NULL REFERENCES rows(id) ON DELETE CASCADE,
            field TEXT NOT NULL,
            old_value TEXT,
            new_value TEXT,
            created_at REAL NOT NULL
        );
        CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            project_id INTEGER,
            job_id INTEGER,
            stage TEXT,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            unit_key TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            latency_ms REAL,
            status TEXT NOT NULL,
            error TEXT,
            from_cache INTEGER NOT NULL DEFAULT 0,
            batch INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE INDEX llm_calls_project ON llm_calls(project_id, stage);
        CREATE INDEX llm_calls_job ON llm_calls(job_id);
        CREATE INDEX llm_calls_hash ON llm_calls(request_hash);
        CREATE TABLE llm_cache (
            key TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            response_json TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE llm_batches (
            id TEXT PRIMARY KEY,
            project_id INTEGER,
            job_id INTEGER,
            provider TEXT NOT NULL,
            status TEXT NOT NULL,
            request_keys_json TEXT NOT NULL,
            meta_json TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            config_json TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'queued',
            pid INTEGER,
            progress_done INTEGER NOT NULL DEFAULT 0,
            progress_total INTEGER,
            message TEXT,
            error TEXT,
            result_json TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            heartbeat_at REAL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE INDEX jobs_project ON jobs(project_id, status);
        CREATE TABLE job_units (
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            unit_key TEXT NOT NULL,
            status TEXT NOT NULL,
            result_json TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            finished_at REAL NOT NULL,
            PRIMARY KEY(job_id, unit_key)
        );
        CREATE TABLE job_logs (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            ts REAL NOT NULL,
            level TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX job_logs_job ON job_logs(job_id, id);
        CREATE TABLE training_runs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
            job_id INTEGER,
            config_json TEXT NOT NULL,
            dataset_version TEXT,
            status TEXT NOT NULL DEFAULT 'created',
            output_dir TEXT,
            best_val_loss REAL,
            created_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE TABLE train_metrics (
            run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            epoch REAL,
            loss REAL,
            val_loss REAL,
            lr REAL,
            tokens_per_s REAL,
            mem_mb REAL,
            eta_s REAL,
            ts REAL NOT NULL,
            PRIMARY KEY(run_id, step)
        );
        CREATE TABLE eval_results (
            id INTEGER PRIMARY KEY,
            project_id INTEGER,
            run_id INTEGER,
            task TEXT NOT NULL,
            model TEXT NOT NULL,
            adapter TEXT,
            n INTEGER NOT NULL,
            score REAL NOT NULL,
            normalized_score REAL NOT NULL,
            details_json TEXT,
            created_at REAL NOT NULL
        );
        CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            meta_json TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL
        );
        """,
    ),
    (
        "0002_row_identity_and_decisions",
        """
        ALTER TABLE rows ADD COLUMN decision TEXT;
        ALTER TABLE rows ADD COLUMN decision_reason TEXT;
        ALTER TABLE rows ADD COLUMN decided_at REAL;
        ALTER TABLE rows ADD COLUMN machine_status TEXT;
        ALTER TABLE rows ADD COLUMN machine_reason TEXT;
        ALTER TABLE rows ADD COLUMN machine_input TEXT;
        ALTER TABLE rows ADD COLUMN machine_output TEXT;
        ALTER TABLE rows ADD COLUMN mapping_version INTEGER;
        ALTER TABLE rows ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE rows ADD COLUMN stale TEXT;
        UPDATE rows SET machine_input=input, machine_output=output,
            machine_status=CASE WHEN status='edited' THEN 'kept' ELSE status END, machine_reason=reason;
        UPDATE rows SET machine_input=COALESCE((SELECT old_value FROM row_edits e WHERE e.row_id=rows.id
            AND e.field='input' ORDER BY e.id LIMIT 1), machine_input),
            machine_output=COALESCE((SELECT old_value FROM row_edits e WHERE e.row_id=rows.id
            AND e.field='output' ORDER BY e.id LIMIT 1), machine_output),
            decision='edited', decided_at=updated_at WHERE status='edited';
        UPDATE rows SET decision='rejected', decision_reason=reason, decided_at=updated_at,
            machine_status='kept', machine_reason=NULL WHERE status='rejected' AND reason LIKE 'user_rejected%';
        DELETE FROM rows WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (
            PARTITION BY project_id, source, dataset_id, config, source_row_id
            ORDER BY (decision IS NOT NULL) DESC, id DESC) AS rn FROM rows) WHERE rn > 1);
        CREATE UNIQUE INDEX rows_identity ON rows(project_id, source, dataset_id, config, source_row_id);
        CREATE INDEX rows_project_decision ON rows(project_id, decision);
        CREATE TABLE row_revisions (
            id INTEGER PRIMARY KEY,
            row_id INTEGER NOT NULL REFERENCES rows(id) ON DELETE CASCADE,
            revision INTEGER NOT NULL,
            run_id TEXT NOT NULL DEFAULT '',
            plan_version INTEGER,
            mapping_version INTEGER,
            input TEXT,
            output TEXT,
            status TEXT NOT NULL,
            reason TEXT,
            path TEXT,
            llm_call_id INTEGER,
            created_at REAL NOT NULL,
            UNIQUE(row_id, revision)
        );
        INSERT INTO row_revisions(row_id, revision, run_id, plan_version, input, output, status, reason, path,
            llm_call_id, created_at)
            SELECT id, 1, run_id, plan_version, machine_input, machine_output, machine_status, machine_reason, path,
            llm_call_id, created_at FROM rows;
        """,
    ),
    (
        "0003_reviewer_judgments",
        """
        CREATE TABLE row_judgments (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            row_id INTEGER NOT NULL REFERENCES rows(id) ON DELETE CASCADE,
            reviewer TEXT NOT NULL,
            verdict TEXT NOT NULL,
            note TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE(row_id, reviewer)
        );
        CREATE INDEX row_judgments_project ON row_judgments(project_id, row_id);
        """,
    ),
    (
        "0004_row_edit_links",
        """
        ALTER TABLE row_edits ADD COLUMN copied_from INTEGER REFERENCES row_edits(id) ON DELETE SET NULL;
        CREATE INDEX row_edits_copied_from ON row_edits(copied_from);
        """,
    ),
]
