"""An MLServer custom runtime around an ONNX Runtime session of a model.onnx, for bench/peers.py.

A model-settings.json names it as `"implementation": "mlserver_onnx.OnnxRuntime"` with the file in
`parameters.uri` and the intra-op threads in `parameters.extra.onnx_threads`; bench/peers.py writes
those files and starts `mlserver start` in its own venv (bench/peers-requirements-mlserver.txt)
with this folder on PYTHONPATH. It answers one tensor, `output`, from `input` FP32 [batch, time, 1].
With adaptive batching on, MLServer concatenates the queued requests along the batch axis before
`predict` and splits the answer after it.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        parameters = self.settings.parameters
        options = ort.SessionOptions()
        options.intra_op_num_threads = int((parameters.extra or {}).get("onnx_threads", 1))
        options.log_severity_level = 3
        self.session = ort.InferenceSession(parameters.uri, options, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        by_name = {tensor.name: tensor for tensor in payload.inputs}
        x = NumpyCodec.decode_input(by_name["input"])
        (y,) = self.session.run(["output"], {"input": x})
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[NumpyCodec.encode_output("output", y)])
