"""One module per ``dagan`` sub-command. Each exposes ``NAME`` (the module's name with ``-`` for ``_``),
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; :mod:`dagan.cli` offers them in the order of
:data:`COMMANDS`, which must name every such module. Modules that define none of the four (``arguments``) are
helpers shared by the commands."""

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
    "bench",
]
