// A version's files (with sha256, for checking what was downloaded) and copy-paste snippets.

import { bytes, h } from "./dom.js";

export function filesTable(version) {
  return h("div", { class: "scroll" }, h("table", { class: "files cards" },
    h("caption", {}, `Files of ${version.name} v${version.version}`),
    h("thead", {}, h("tr", {}, ["File", "Size", "sha256", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, version.files.map((f) => h("tr", { "data-file": f.name },
      h("th", { scope: "row" }, h("span", {}, f.name), h("span", { class: "muted small" }, f.description)),
      h("td", { "data-label": "Size" }, bytes(f.size)),
      h("td", { class: "sha", "data-label": "sha256" }, f.sha256 ? h("code", {}, f.sha256) : h("span", { class: "muted" }, "made on first download")),
      h("td", {}, h("a", { href: f.url, download: f.name, class: "button" }, "Download", h("span", { class: "sr-only" }, ` ${f.name}`))),
    )))));
}

function sha(version, file) { return version.files.find((f) => f.name === file)?.sha256; }

function pytorchSnippet(version, base) {
  const expected = sha(version, "weights.safetensors");
  return `import hashlib, urllib.request
import torch
from warmzoo.models.weights import network_from_weights  # the warmzoo package

url = "${base}/weights.safetensors"
data = urllib.request.urlopen(url).read()
assert hashlib.sha256(data).hexdigest() == "${expected}"
network = network_from_weights(data)
x = torch.randn(1, 50, ${version.spec.input_size})  # [batch, time, input_size]
y, state = network(x)`;
}

function plainSnippet(version, base) {
  return `import urllib.request
import torch

for name in ("modeling.py", "weights.safetensors"):  # each download's ETag header is its sha256
    urllib.request.urlretrieve(f"${base}/{name}", name)
from modeling import load  # plain PyTorch: needs only torch and safetensors

network = load("weights.safetensors")
x = torch.randn(1, 50, ${version.spec.input_size})  # [batch, time, input_size]
y, state = network(x)`;
}

function onnxSnippet(version, base) {
  return `import urllib.request
import numpy as np
import onnxruntime as ort

urllib.request.urlretrieve("${base}/model.onnx", "model.onnx")  # ETag header = its sha256
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
x = np.random.randn(2, 50, ${version.spec.input_size}).astype(np.float32)  # [batch, time, input_size]
output, state = session.run(["output", "state_out"], {"input": x})`;
}

function snippet(title, code) {
  const status = h("span", { class: "copied", role: "status" });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(code);
      status.textContent = "Copied";
    } catch {
      status.textContent = "Select the code and copy it";
    }
  };
  return h("figure", { class: "snippet" },
    h("figcaption", {}, h("span", {}, title), h("button", { type: "button", onclick: copy }, "Copy", h("span", { class: "sr-only" }, ` ${title} snippet`)), status),
    h("pre", { tabindex: "0" }, h("code", {}, code)));
}

/** Plain PyTorch, warmzoo and ONNX Runtime snippets that download this version (by number, never an alias). */
export function snippets(version) {
  const base = `${location.origin}/v1/models/${version.name}/versions/${version.version}/files`;
  return h("div", { class: "snippets" },
    snippet("Plain PyTorch (modeling.py)", plainSnippet(version, base)),
    snippet("PyTorch (warmzoo)", pytorchSnippet(version, base)),
    snippet("ONNX Runtime", onnxSnippet(version, base)));
}
