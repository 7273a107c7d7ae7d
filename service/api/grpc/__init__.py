"""gRPC /v2: the Open Inference Protocol's gRPC service, beside the HTTP routes and on the same data plane."""
