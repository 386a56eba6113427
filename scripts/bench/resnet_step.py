"""ResNet-50 (CIFAR stem, 100 classes) training step in PyTorch eager, the same as
torch/resnet_bench_test.go's BenchmarkResNet50Step: SGD with Nesterov momentum and weight decay,
label smoothing 0.1, the batch copied from (pinned) host memory every step, optional bf16 autocast
and channels_last. Plain torch.nn (no torchvision needed). Prints images/s and TFLOP/s.

Usage: python3 scripts/bench/resnet_step.py [--device cuda] [--batch 256] [--bf16] [--channels-last] [--seconds 10]
"""
import argparse
import time

import torch
from torch import nn
import torch.nn.functional as F

GFLOP_PER_IMAGE = 7.8


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inp != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inp, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + identity)


class ResNet50(nn.Module):
    def __init__(self, classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inp, layers = 64, []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            seq = []
            for b in range(blocks):
                seq.append(Bottleneck(inp, planes, 2 if i > 0 and b == 0 else 1))
                inp = planes * 4
            layers.append(nn.Sequential(*seq))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = ResNet50().to(dev).to(memory_format=fmt).train()
    assert sum(p.numel() for p in model.parameters()) == 23_705_252
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_host = torch.randn(args.batch, 3, 32, 32)
    y_host = torch.randint(0, 100, (args.batch,))
    if dev.type == "cuda":
        x_host, y_host = x_host.pin_memory(), y_host.pin_memory()

    def step():
        x = x_host.to(dev, non_blocking=True).contiguous(memory_format=fmt)
        y = y_host.to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        step()
        steps += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    images = steps * args.batch / (time.perf_counter() - start)
    print(f"python_images_per_s {images:.1f} tflops {images * GFLOP_PER_IMAGE / 1000:.1f} batch {args.batch} "
          f"bf16 {args.bf16} channels_last {args.channels_last} torch {torch.__version__}")


if __name__ == "__main__":
    main()
