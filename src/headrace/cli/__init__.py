"""The `headrace` command line (typer + rich): `headrace <noun> <verb>`, `--json` everywhere."""
