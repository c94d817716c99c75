"""Train the demo CNN shipped as ``src/pyflame_rt/models/shapes_cnn.onnx``.

Run once by a developer (needs the ``torch`` extra): ``python tools/train_demo_model.py``.
It draws a training set with :func:`pyflame_rt.models.shapes.make_batch`, trains a small
Conv-BN-ReLU CNN for a few epochs on the CPU, prints held-out accuracy and exports ONNX
(opset 17, dynamic batch axis ``batch``) with the TorchScript-based exporter.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from pyflame_rt.models.shapes import CLASSES, IMAGE_SIZE, demo_model_path, make_batch


def build() -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(1, 16), *block(16, 32), *block(32, 64),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, len(CLASSES)), nn.Softmax(dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=demo_model_path())
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = make_batch(args.train, seed=1)
    xt, yt = make_batch(1000, seed=2)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs), 128):
            idx = perm[i:i + 128]
            probs = model(xs[idx])
            loss = nn.functional.nll_loss(torch.log(probs + 1e-9), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, held-out accuracy {acc:.3f}")
    example = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    torch.onnx.export(model, (example,), args.out, input_names=["image"],
                      output_names=["probabilities"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}})
    print(f"wrote {args.out} ({np.round(acc * 100, 1)}% held-out accuracy)")


if __name__ == "__main__":
    main()
