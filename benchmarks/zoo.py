"""The benchmark suite's architectures, written in plain PyTorch with random weights.

torchvision and Hugging Face are not used (no downloads; torchvision does not import beside
torch 2.13 here), so each model is spelled out below after its paper / reference layout:
ResNet-50 (v1.5, stride on the 3x3), MobileNetV2, SqueezeNet 1.1, GoogLeNet (Inception-v1
with batch norm), DenseNet-121, VGG-19, a BERT-base encoder, a GPT-2-small decoder with its
tied LM head, and ViT-Tiny/16.

Weights are random but deterministic (seeded). Batch-norm statistics are calibrated on random
inputs so activations keep a sane scale through deep nets: that keeps the numerical agreement
check between engines meaningful (a net whose activations vanish passes any tolerance).

Only ``compare.py``'s export step imports this module (in a child process), so the timing
process never loads torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BUILDERS", "build", "example_inputs", "export_onnx"]

# compare.py names cached exports after a hash of this file, so any edit here rebuilds them.

IMAGE = (3, 224, 224)
SEQ = 128


# --------------------------------------------------------------------------------------------
# CNN building blocks


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str = "relu",
            eps: float = 1e-5) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> activation ("relu", "relu6" or "none")."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=eps)]
    if act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act == "relu6":
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 -> 3x3 (stride) -> 1x1 (x4), projection shortcut."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                                  conv_bn(width, cout, 1, act="none"))
        self.shortcut = (conv_bn(cin, cout, 1, stride, act="none")
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        cin = 64
        for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(count):
                blocks.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, hidden, 1, act="relu6"))
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                   conv_bn(hidden, cout, 1, act="none")]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act="relu6")]
        cin = 32
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1(s)), F.relu(self.expand3(s))], 1)


class SqueezeNet11(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(inplace=True), pool,
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool,
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool,
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1),
                                        nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class Inception(nn.Module):
    """Inception-v1 module: 1x1 | 1x1->3x3 | 1x1->5x5 | maxpool->1x1, concatenated."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int,
                 pool: int) -> None:
        super().__init__()
        eps = 1e-3
        self.b1 = conv_bn(cin, c1, 1, eps=eps)
        self.b3 = nn.Sequential(conv_bn(cin, c3r, 1, eps=eps), conv_bn(c3r, c3, 3, eps=eps))
        self.b5 = nn.Sequential(conv_bn(cin, c5r, 1, eps=eps), conv_bn(c5r, c5, 5, eps=eps))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                conv_bn(cin, pool, 1, eps=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        eps = 1e-3
        self.features = nn.Sequential(
            conv_bn(3, 64, 7, 2, eps=eps), nn.MaxPool2d(3, 2, ceil_mode=True),
            conv_bn(64, 64, 1, eps=eps), conv_bn(64, 192, 3, eps=eps),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
            Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
            Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(2, 2, ceil_mode=True),
            Inception(832, 256, 160, 320, 32, 128, 128),
            Inception(832, 384, 192, 384, 48, 128, 128))
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(torch.flatten(x, 1))


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (4*growth) -> BN-ReLU-3x3 (growth), on the concatenation of all inputs."""

    def __init__(self, cin: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, bn_size * growth, 1, bias=False),
            nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True),
            nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.body(torch.cat(features, 1))


class DenseBlock(nn.Module):
    def __init__(self, count: int, cin: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(count))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet121(nn.Module):
    def __init__(self, num_classes: int = 1000, growth: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1)]
        c = 64
        for i, count in enumerate((6, 12, 24, 16)):
            layers.append(DenseBlock(count, c, growth))
            c += count * growth
            if i != 3:
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                           nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(torch.flatten(x, 1))


class VGG19(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                  512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                c = int(v)
        self.features = nn.Sequential(*layers)
        # At 224x224 the feature map is already 7x7, so VGG's adaptive pool is the identity.
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------------------------
# Transformers


class SelfAttention(nn.Module):
    """Multi-head self-attention with an additive mask (B, 1, 1|S, S) or none."""

    def __init__(self, dim: int, heads: int, fused_qkv: bool = False) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.fused_qkv = fused_qkv
        if fused_qkv:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        b, s = t.size(0), t.size(1)
        return t.view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.fused_qkv:
            q, k, v = self.qkv(x).split(x.size(-1), dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q, k, v = self.split(q), self.split(k), self.split(v)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        ctx = ctx.permute(0, 2, 1, 3).contiguous()
        return self.proj(ctx.view(ctx.size(0), ctx.size(1), -1))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU (tanh approximation), written out as the original code does."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class BertLayer(nn.Module):
    """Post-LN encoder layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)), GELU (erf)."""

    def __init__(self, dim: int = 768, heads: int = 12, ffn: int = 3072) -> None:
        super().__init__()
        self.attn = SelfAttention(dim, heads)
        self.ln1 = nn.LayerNorm(dim, eps=1e-12)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x, mask))
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))


class BertBase(nn.Module):
    """BERT-base encoder (12 layers, hidden 768, 12 heads) returning the last hidden state."""

    def __init__(self, vocab: int = 30522, dim: int = 768, layers: int = 12,
                 max_pos: int = 512) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab, dim)
        self.position = nn.Embedding(max_pos, dim)
        self.token_type = nn.Embedding(2, dim)
        self.ln = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(dim) for _ in range(layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        x = self.ln(x)
        # The original BERT's additive mask: 0 where attended, -10000 at padding.
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, mask)
        return x


class GPT2Block(nn.Module):
    """Pre-LN decoder block: x += Attn(LN(x)) (causal); x += MLP(LN(x)), GELU (tanh)."""

    def __init__(self, dim: int = 768, heads: int = 12) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, fused_qkv=True)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.fc2(gelu_tanh(self.fc1(self.ln2(x))))


class GPT2Small(nn.Module):
    """GPT-2 small (12 layers, 768, 12 heads) with the LM head tied to the token embedding."""

    def __init__(self, vocab: int = 50257, dim: int = 768, layers: int = 12,
                 max_pos: int = 1024) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(max_pos, dim)
        self.blocks = nn.ModuleList(GPT2Block(dim) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.register_buffer("causal", torch.tril(torch.ones(max_pos, max_pos, dtype=torch.bool))
                             .view(1, 1, max_pos, max_pos), persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        s = input_ids.size(1)
        positions = torch.arange(s, device=input_ids.device).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(positions)
        # Additive causal mask: 0 on and below the diagonal, the float minimum above.
        allowed = self.causal[:, :, :s, :s]
        mask = torch.zeros((), dtype=x.dtype).masked_fill(~allowed, torch.finfo(x.dtype).min)
        for block in self.blocks:
            x = block(x, mask)
        return torch.matmul(self.ln_f(x), self.wte.weight.t())


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, fused_qkv=True)
        self.fc1, self.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ViTTiny(nn.Module):
    """ViT-Tiny/16: 224x224, patch 16, dim 192, 12 layers, 3 heads, MLP 768, class token."""

    def __init__(self, num_classes: int = 1000, dim: int = 192, layers: int = 12,
                 heads: int = 3, patch: int = 16) -> None:
        super().__init__()
        tokens = (224 // patch) ** 2
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(ViTBlock(dim, heads, 4 * dim) for _ in range(layers)))
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.size(0), -1, -1), x], 1) + self.pos
        x = self.ln(self.blocks(x))
        return self.head(x[:, 0])


# --------------------------------------------------------------------------------------------
# Weights


def _init_cnn(model: nn.Module) -> None:
    """He-normal convs, N(0, 0.01) linears, slightly random batch-norm affine parameters."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.05, 0.05)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def _calibrate_batch_norm(model: nn.Module, steps: int = 2, batch: int = 4) -> None:
    """Set running statistics from random images, so eval-mode BN really normalizes."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(batch, *IMAGE))
    model.eval()


def _init_transformer(model: nn.Module) -> None:
    """GPT-2 / BERT style: N(0, 0.02) weights, zero biases, unit LayerNorm."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)


def _cnn(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        model = cls()
        _init_cnn(model)
        _calibrate_batch_norm(model)
        return model
    return make


def _transformer(cls: type[nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        model = cls()
        _init_transformer(model)
        return model
    return make


# name -> (builder, input names, output names)
BUILDERS: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...], tuple[str, ...]]] = {
    "resnet50": (_cnn(ResNet50), ("input",), ("output",)),
    "mobilenetv2": (_cnn(MobileNetV2), ("input",), ("output",)),
    "squeezenet1.1": (_cnn(SqueezeNet11), ("input",), ("output",)),
    "googlenet": (_cnn(GoogLeNet), ("input",), ("output",)),
    "densenet121": (_cnn(DenseNet121), ("input",), ("output",)),
    "vgg19": (_cnn(VGG19), ("input",), ("output",)),
    "bert-base": (_transformer(BertBase), ("input_ids", "attention_mask", "token_type_ids"),
                  ("last_hidden_state",)),
    "gpt2-small": (_transformer(GPT2Small), ("input_ids",), ("logits",)),
    "vit-tiny": (_transformer(ViTTiny), ("input",), ("output",)),
}


def example_inputs(name: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Tracing inputs (values do not matter beyond dtype and shape)."""
    if name == "bert-base":
        return (torch.randint(0, 30522, (batch, SEQ)), torch.ones(batch, SEQ, dtype=torch.long),
                torch.zeros(batch, SEQ, dtype=torch.long))
    if name == "gpt2-small":
        return (torch.randint(0, 50257, (batch, SEQ)),)
    return (torch.randn(batch, *IMAGE),)


def build(name: str, seed: int = 0) -> nn.Module:
    """The model ``name`` in eval mode with seeded random weights."""
    if name not in BUILDERS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(BUILDERS)}")
    torch.manual_seed(seed)
    model = BUILDERS[name][0]()
    return model.eval()


def export_onnx(name: str, path: str | Path, opset: int = 17, seed: int = 0) -> Path:
    """Export ``name`` to ONNX at ``path`` with a dynamic batch axis on every input/output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build(name, seed)
    _, inputs, outputs = BUILDERS[name]
    dynamic = {n: {0: "batch"} for n in (*inputs, *outputs)}
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(model, example_inputs(name), str(tmp), dynamo=False,
                          opset_version=opset, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=dynamic,
                          do_constant_folding=True)
    tmp.replace(path)  # atomic: a killed export never leaves a half-written cache entry
    return path


if __name__ == "__main__":
    # compare.py runs `python zoo.py NAME PATH` so that torch stays out of the timing process.
    if len(sys.argv) != 3:
        sys.exit(f"usage: python {Path(__file__).name} MODEL OUT.onnx  (models: "
                 f"{', '.join(BUILDERS)})")
    export_onnx(sys.argv[1], sys.argv[2])
