"""The model registry: the database (tables, sessions, migrations), the content-addressed blob
store, versions and their files, data sets, and the consistency check."""
