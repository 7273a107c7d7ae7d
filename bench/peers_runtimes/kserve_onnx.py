"""KServe's Python model server around ONNX Runtime sessions of model.onnx files, for bench/peers.py.

    .venv-peers/bin/python bench/peers_runtimes/kserve_onnx.py --http_port P --grpc_port G \
        --onnx gru=/path/model.onnx --onnx brc=/path/model.onnx [--onnx_threads 1]

Runs in its own venv (bench/peers-requirements.txt), so it imports nothing of warmzoo. Each
model answers v2 REST and gRPC with one tensor, `output`, from `input` FP32 [batch, time, 1].
`predict` is synchronous, so KServe runs it on its event loop, as its custom-model examples do.
"""

from __future__ import annotations

import argparse
import logging
import uuid

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


class OnnxModel(Model):
    def __init__(self, name: str, path: str, threads: int) -> None:
        super().__init__(name)
        self.path = path
        self.threads = threads
        self.session: ort.InferenceSession | None = None
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        x = payload.get_input_by_name("input").as_numpy()
        (y,) = self.session.run(["output"], {"input": x})
        output = InferOutput(name="output", shape=list(y.shape), datatype="FP32")
        output.set_data_from_numpy(y, binary_data=payload.from_grpc)  # raw bytes over gRPC, a JSON list over REST
        response_id = payload.id or str(uuid.uuid4())  # KServe's REST answer must carry an id
        return InferResponse(response_id=response_id, model_name=self.name, infer_outputs=[output])


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser], conflict_handler="resolve")
    parser.add_argument("--onnx", action="append", required=True, help="NAME=PATH of a model.onnx, repeatable")
    parser.add_argument("--onnx_threads", type=int, default=1, help="intra-op threads per session")
    args, _ = parser.parse_known_args()
    models = [OnnxModel(name, path, args.onnx_threads) for name, path in (item.split("=", 1) for item in args.onnx)]
    server = ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_latency_logging=False)
    for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.access"):  # warnings only, as the race runs warmzoo
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start(models)


if __name__ == "__main__":
    main()
