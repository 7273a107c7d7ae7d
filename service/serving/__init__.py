"""Inference: the model repository (which file serves a name and version), the data plane
(ONNX Runtime sessions, checks, batching), streaming-sequence state and the OIP v2 types."""
