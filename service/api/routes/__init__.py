"""One router per resource; handlers parse, call the service layer and shape the answer."""

from warmzoo.service.api.routes import datasets, inference, jobs, models, warmups

__all__ = ["datasets", "inference", "jobs", "models", "warmups"]
