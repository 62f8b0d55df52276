"""CLI glue, one module per stage. Each module defines `add_commands(subparsers)` and may set `ORDER`."""
