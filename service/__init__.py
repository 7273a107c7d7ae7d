"""The warmzoo service, in layers that import only downwards:

    core <- registry <- security <- jobs | serving <- api <- cli

`service` imports `models` (the science), never the reverse; import-linter checks both
(the contracts are in pyproject.toml, the layers in docs/design.md).
"""
