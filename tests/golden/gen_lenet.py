#!/usr/bin/python3
"""Golden tensors for tests/test_lenet.cpp: a PyTorch LeNet-5 of the same layout as ouro::nn::lenet.

Run with Debian's interpreter (it has torch):  /usr/bin/python3 tests/golden/gen_lenet.py
Writes tests/golden/lenet/: parameters under their state-dict names, the input x, the upstream
gradient dlogits, the logits (float64), the 84-d features, dx and every parameter gradient ("grad/<name>.npy",
float32). Fixed seed.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lenet")


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.relu(self.fc1(h.flatten(1)))
        return F.relu(self.fc2(h))

    def forward(self, x):
        return self.fc3(self.features(x))


def save(name, t, dtype=np.float64):
    path = os.path.join(OUT, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, t.detach().numpy().astype(dtype))


def main():
    torch.manual_seed(5)
    net = LeNet()
    # Parameters are rounded to float32 and stored so (exactly), keeping the files small; the
    # computation is still float64.
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.float().double())
    x = torch.randn(3, 1, 28, 28).requires_grad_()
    feats = net.features(x)
    logits = net.fc3(feats)
    dlogits = torch.randn(logits.shape)
    logits.backward(dlogits)
    for name, p in net.state_dict().items():
        save(name, p, np.float32)
    for name, p in net.named_parameters():
        save("grad/" + name, p.grad, np.float32)
    for name, t in [("x", x), ("dlogits", dlogits), ("logits", logits), ("features", feats), ("dx", x.grad)]:
        save(name, t)


if __name__ == "__main__":
    main()
