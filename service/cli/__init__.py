"""The `warmzoo` command and its HTTP client."""
