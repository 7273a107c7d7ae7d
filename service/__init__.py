"""The warmzoo service: registry, blob store, jobs, inference and the HTTP API over them.

`service` imports `models` (the science), never the reverse.
"""
