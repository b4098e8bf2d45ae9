"""One module per resource; each ``cmd_*`` takes a :class:`~aip.cli.context.Context` and
returns the exit code (errors are raised and mapped to exit codes by ``aip.cli.app.main``)."""
