"""The job kinds of the tests, registered by name (the worker processes load this module through
DATATUNE_JOB_PLUGINS, set in tests/conftest.py)."""

from datatune_core.jobs import register_job_kind

register_job_kind("test.slow_units", "tests.app.jobfns:slow_units")
register_job_kind("test.label_rows", "tests.llm.jobfns:label_rows")
register_job_kind("test.rerank_job", "tests.reliability.jobfns:rerank_job")
register_job_kind("test.count_units", "tests.foundation.jobfns:count_units")
register_job_kind("test.fail", "tests.foundation.jobfns:fail")
