"""The LSTM training step of spottrain's benchmark, in PyTorch eager: same model, sizes, optimizer,
gradient clipping and thread count as torch/bench_test.go's BenchmarkLSTMStep. Prints steps/s.

Usage: /usr/bin/python3 scripts/bench/lstm_step.py [--threads N] [--seconds S] [--device cpu]
"""
import argparse
import time

import torch
from torch import nn

BATCH, LOOKBACK, FEATURES, HIDDEN, LAYERS, HORIZON = 64, 48, 8, 64, 2, 24


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, HIDDEN, num_layers=LAYERS, dropout=0.1, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(HIDDEN, HORIZON)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.drop(out[:, -1, :]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = Forecaster().to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, LOOKBACK, FEATURES, device=dev)
    y = torch.randn(BATCH, HORIZON, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach()

    for _ in range(5):
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for _ in range(10):
            step()
        steps += 10
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    print(f"python_steps_per_s {steps / elapsed:.2f} torch {torch.__version__} threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
