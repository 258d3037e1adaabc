"""One module per ``dagan`` sub-command. Each exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`dagan.cli` discovers them from :data:`COMMANDS`."""

COMMANDS = [
    "info",
    "compare",
    "synth",
    "data",
    "inspect",
    "import-official",
    "prepare-data",
    "train",
    "animate",
    "evaluate",
    "train-depth",
    "depth",
    "demo",
    "export",
    "webui",
]
