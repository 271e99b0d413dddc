"""The Studio's thin UI layer: cached accessors, widgets and error display over `datatune_core`.

Pages (`app_pages/*.py`) only lay out widgets and call into this package; this package only calls
`datatune_core` (no pipeline logic here either). It may import streamlit; `datatune_core` never does.

- `state`: the workspace store, the current project (session -> URL `?project=` -> "last opened" in the store).
- `errors`: `show_error` / `guard` — a clear message with the fix; details in an expander and the app log.
- `widgets`: page header, next-step link, buttons disabled with a reason, live job panel (cancel/resume).
- `uploads`: size-limited uploads with sanitized file names.
- `review`: the review table's filters, paging (LIMIT/OFFSET) and edit/bulk actions over `Store`.
"""
