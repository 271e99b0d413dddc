"""One file per pipeline stage, each with `register(app)` adding its `datatune` sub-commands."""
