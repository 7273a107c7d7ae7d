"""The HTTP API: injected dependencies, JSON schemas and one router per resource."""
