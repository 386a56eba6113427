"""Loads a .safetensors file of `spottrain ckpt export` into a PyTorch LSTM forecaster, without
spottrain and without the safetensors package, with the reader and module of
scripts/forecast/forecast.py, and forecasts a fixed input.

usage: forecast_safetensors.py FILE BATCH LOOKBACK

The architecture comes from the file's __metadata__ (model_spec), the weights are loaded with
load_state_dict(strict=True), and the input is x[i] = (i % 17) / 8 - 1 in float32, shaped
[BATCH, LOOKBACK, inputs] (the Go test builds the same). Prints one JSON object: the tensor names
in file order, the metadata and the outputs, flattened row-major.
"""

import json
import os
import sys

import torch

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "forecast"))
from forecast import Forecaster, read_safetensors  # noqa: E402  (scripts/forecast/forecast.py)


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
