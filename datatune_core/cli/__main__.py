"""`python -m datatune_core.cli ...` runs the `datatune` command line."""

from datatune_core.cli import main

main()
