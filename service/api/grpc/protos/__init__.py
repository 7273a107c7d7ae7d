"""Triton's `inference.GRPCInferenceService` (grpc_service.proto, model_config.proto): KServe's
grpc_predict_v2.proto plus the Triton extensions (model config, repository index, statistics,
shared memory, ...), so both KServe's and Triton's gRPC clients can call it.

The .proto files are verbatim copies of protobuf/ in github.com/triton-inference-server/common
(commit 83adf7c, their BSD licence in each header); the *_pb2* modules are generated from
them by `make protos`, never edited by hand.
"""
