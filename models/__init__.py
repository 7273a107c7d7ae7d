"""The science of warmzoo: recurrent cells, multistability measures, warm-up, tasks, export.

Nothing here knows about the web or a database; `service` builds on it.
"""
