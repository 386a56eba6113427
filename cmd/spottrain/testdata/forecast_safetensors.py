"""Loads a .safetensors file of `spottrain ckpt export` into a PyTorch LSTM forecaster, without
spottrain and without the safetensors package (json, struct and torch.frombuffer only), and
forecasts a fixed input.

usage: forecast_safetensors.py FILE BATCH LOOKBACK

The architecture comes from the file's __metadata__ (model_spec), the weights are loaded with
load_state_dict(strict=True), and the input is x[i] = (i % 17) / 8 - 1 in float32, shaped
[BATCH, LOOKBACK, inputs] (the Go test builds the same). Prints one JSON object: the tensor names
in file order, the metadata and the outputs, flattened row-major.
"""

import json
import struct
import sys

import torch
from torch import nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    state = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        if begin == end:
            t = torch.empty(info["shape"], dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(info["shape"])
        state[name] = t
    return state, metadata


class Forecaster(nn.Module):
    """The module spottrain's C++ shim builds: lstm -> last time step -> drop -> head
    (Linear(hidden, horizon)); with step_head, lstm -> the last horizon steps -> drop -> head
    (Linear(hidden, 1)) -> squeeze."""

    def __init__(self, spec):
        super().__init__()
        layers = spec["layers"]
        self.horizon = spec["horizon"]
        self.step_head = spec.get("step_head", False)
        self.lstm = nn.LSTM(spec["inputs"], spec["hidden"], layers, batch_first=True,
                            dropout=spec.get("dropout", 0.0) if layers > 1 else 0.0)
        self.drop = nn.Dropout(spec.get("dropout", 0.0))
        self.head = nn.Linear(spec["hidden"], 1 if self.step_head else self.horizon)

    def forward(self, x):
        out, _ = self.lstm(x)
        if self.step_head:
            return self.head(self.drop(out[:, -self.horizon:])).squeeze(-1)
        return self.head(self.drop(out[:, -1]))


def main():
    path, batch, lookback = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    state, metadata = read_safetensors(path)
    spec = json.loads(metadata["model_spec"])
    model = Forecaster(spec)
    model.load_state_dict(state, strict=True)
    model.eval()
    n = batch * lookback * spec["inputs"]
    x = ((torch.arange(n) % 17).to(torch.float32) / 8 - 1).reshape(batch, lookback, spec["inputs"])
    with torch.no_grad():
        y = model(x)
    print(json.dumps({"names": list(state), "metadata": metadata, "outputs": y.flatten().tolist()}))


if __name__ == "__main__":
    main()
