"""A zoo of small PyTorch modules for the importer tests.

Each entry builds a module in eval mode with seeded random weights and makes example inputs for
a given batch size; the batch axis of every input is declared dynamic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CASES", "Case", "case"]


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[int], tuple]
    # Which axis of each input is the batch (None: not dynamic). Defaults to axis 0 for all.
    batch_axes: tuple | None = None
    scriptable: bool = True  # torch.jit.script accepts the module
    slow: bool = False
    tags: set = field(default_factory=set)

    def dynamic_shapes(self, batch_name: str = "batch") -> tuple:
        batch = torch.export.Dim(batch_name, min=1, max=1024)
        n = len(self.inputs(2))
        axes = self.batch_axes if self.batch_axes is not None else (0,) * n
        return tuple(None if a is None else {a: batch} for a in axes)


CASES: dict[str, Case] = {}


def case(name: str, inputs: Callable[[int], tuple], **kw) -> Callable:
    def register(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        def seeded() -> nn.Module:
            torch.manual_seed(0)
            module = build()
            _randomize_buffers(module)
            return module.eval()

        CASES[name] = Case(name, seeded, inputs, **kw)
        return build

    return register


def _randomize_buffers(module: nn.Module) -> None:
    # Fresh BatchNorm statistics are 0/1, which would hide a wrong mean/var mapping.
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                nn.init.normal_(m.weight, 1.0, 0.1, generator=g)
                nn.init.normal_(m.bias, 0.0, 0.1, generator=g)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed + sum(shape)))


# -- the zoo ------------------------------------------------------------------------------------
@case("mlp", lambda b: (_rand(b, 12),))
def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 16),
                         nn.Tanh(), nn.Linear(16, 5))


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.block = _ResBlock(8)
        self.avg = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.pool(self.stem(x)))
        x = self.gap(self.avg(x))
        return self.fc(torch.flatten(x, 1))


@case("cnn_resnet", lambda b: (_rand(b, 3, 20, 20),))
def _cnn() -> nn.Module:
    return _CNN()


class _DepthwiseSeparable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.Hardswish(),
            nn.Conv2d(16, 16, 5, stride=2, padding=2, groups=16), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@case("depthwise_separable", lambda b: (_rand(b, 4, 16, 16),))
def _dws() -> nn.Module:
    return _DepthwiseSeparable()


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=pad)


def _encoder_inputs(b: int) -> tuple:
    pad = torch.zeros(b, 6, dtype=torch.bool)
    pad[:, 4:] = True  # the last two positions are padding
    return _rand(b, 6, 16), pad


@case("transformer_encoder", _encoder_inputs, scriptable=False)
def _enc() -> nn.Module:
    return _Encoder()


class _CausalBlock(nn.Module):
    """A GPT-style pre-norm decoder block with a hand-written causal mask."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


@case("causal_decoder_block", lambda b: (_rand(b, 7, 16),))
def _causal() -> nn.Module:
    return _CausalBlock()


class _SDPA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, 8)).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@case("sdpa_causal", lambda b: (_rand(b, 5, 16),), scriptable=False)
def _sdpa() -> nn.Module:
    return _SDPA()


class _MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.cross = nn.MultiheadAttention(16, 2, kdim=8, vdim=12, batch_first=True)

    def forward(self, x: torch.Tensor, mem_k: torch.Tensor, mem_v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        y, w = self.attn(x, x, x, need_weights=True)
        z, _ = self.cross(y, mem_k, mem_v, need_weights=False)
        assert w is not None
        return z, w


@case("multihead_attention",
      lambda b: (_rand(b, 5, 16), _rand(b, 3, 8, seed=1), _rand(b, 3, 12, seed=2)))
def _mha() -> nn.Module:
    return _MHA()


class _RNNs(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = cls(6, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.out(y)


@case("lstm_bidirectional_2layer", lambda b: (_rand(b, 5, 6),))
def _lstm() -> nn.Module:
    return _RNNs("lstm")


@case("gru_bidirectional_2layer", lambda b: (_rand(b, 5, 6),))
def _gru() -> nn.Module:
    return _RNNs("gru")


class _LSTMState(nn.Module):
    """Sequence-first LSTM fed an initial state, returning the final states too."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 5, num_layers=1)

    def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h, c) = self.rnn(x, (h0, c0))
        return y, h, c


@case("lstm_with_state", lambda b: (_rand(3, b, 4), _rand(1, b, 5, seed=1), _rand(1, b, 5, seed=2)),
      batch_axes=(1, 1, 1))
def _lstm_state() -> nn.Module:
    return _LSTMState()


class _Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(50, 8, padding_idx=0)
        self.pos = nn.Embedding(10, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1])
        return self.norm(self.tok(ids) + self.pos(positions))


@case("embedding", lambda b: (torch.randint(0, 50, (b, 6),
                                            generator=torch.Generator().manual_seed(b)),))
def _emb() -> nn.Module:
    return _Embedding()


class _Norms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm([6, 5, 5])
        self.gn = nn.GroupNorm(3, 6)
        self.inorm = nn.InstanceNorm2d(6, affine=True)
        self.inorm_plain = nn.InstanceNorm1d(6)
        with torch.no_grad():
            for p in self.parameters():
                p.add_(torch.randn_like(p) * 0.2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.inorm(self.gn(self.ln(x)))
        return y, self.inorm_plain(x.flatten(2))


@case("layer_group_instance_norm", lambda b: (_rand(b, 6, 5, 5),))
def _norms() -> nn.Module:
    return _Norms()


class _Interpolate(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (F.interpolate(x, scale_factor=2, mode="nearest"),
                F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False),
                F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True),
                F.interpolate(x, size=(8, 10), mode="bicubic", align_corners=False),
                F.interpolate(x, scale_factor=(2, 3), mode="nearest-exact"),
                nn.Upsample(scale_factor=2, mode="bilinear")(x))


@case("interpolate", lambda b: (_rand(b, 2, 4, 5),), scriptable=False)
def _interp() -> nn.Module:
    return _Interpolate()


class _Upsample1d3d(nn.Module):
    def forward(self, x: torch.Tensor, v: torch.Tensor) -> tuple:
        return (F.interpolate(x, scale_factor=2, mode="linear"),
                F.interpolate(x, size=11, mode="nearest"),
                F.interpolate(v, scale_factor=2, mode="trilinear"),
                F.interpolate(v, scale_factor=2, mode="nearest"))


@case("interpolate_1d_3d", lambda b: (_rand(b, 3, 5), _rand(b, 2, 2, 3, 3, seed=4)),
      scriptable=False)
def _interp13() -> nn.Module:
    return _Upsample1d3d()


class _Indexing(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        a, b = x.split([3, 5], dim=1)
        c1, c2, c3 = y.chunk(3, dim=-1)
        w = torch.where(a > 0, a, c1[:, 0, :3] * 2)
        cat = torch.cat([w, b[:, 1::2], x[:, -2:]], dim=1)
        picked = x[:, [0, 2, 5]]
        sel = y[:, 1, 2:5]
        stack = torch.stack([c2, c3], dim=1)
        masked = x.masked_fill(x < -0.5, 0.0)
        flipped = torch.flip(y, [1])
        return cat, picked, sel, stack, masked, x.unsqueeze(1).expand(-1, 2, -1), flipped, \
            x.transpose(0, 1).contiguous()[1:4], torch.roll(x, 2, 1)


@case("where_index_slice_cat_split", lambda b: (_rand(b, 8), _rand(b, 4, 9, seed=3)))
def _indexing() -> nn.Module:
    return _Indexing()


class _Gather(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> tuple:
        g = torch.gather(x, 1, idx)
        rows = x[torch.arange(x.shape[0]), idx[:, 0]]
        s = torch.zeros_like(x).scatter(1, idx, 1.0)
        t = torch.index_select(x, 1, torch.tensor([3, 1]))
        added = x.scatter_add(1, idx, torch.ones_like(x))
        y = x.clone()
        y[:, 0] = 5.0
        y[:, 2:4] = x[:, :2] * 2
        y[torch.arange(x.shape[0]), idx[:, 1]] = -1.0
        neg = x[:, [-1, 0]]
        return g, rows, s, t, added, y, neg


@case("gather_scatter", lambda b: (_rand(b, 6), torch.randint(
    0, 6, (b, 2), generator=torch.Generator().manual_seed(b))))
def _gather() -> nn.Module:
    return _Gather()


class _Reductions(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (x.sum(1), x.mean((1, 2), keepdim=True), x.amax(-1), x.amin(1),
                x.max(dim=2).values, x.max(dim=2).indices, x.argmin(1), x.prod(2),
                x.std(1), x.var(2, unbiased=False), torch.linalg.vector_norm(x, dim=-1),
                torch.logsumexp(x, 1),
                x.abs().sum(), x.cumsum(1), (x > 0).any(2), (x > -2).all(1), x.median(dim=2).values,
                torch.linalg.vector_norm(x, ord=1, dim=1))


@case("reductions", lambda b: (_rand(b, 3, 4),))
def _red() -> nn.Module:
    return _Reductions()


class _Softmax(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (x.softmax(-1), F.log_softmax(x, 1), F.softmax(x, 0), torch.softmax(x * 3, 2),
                F.softmin(x, 1))


@case("softmax_log_softmax", lambda b: (_rand(b, 4, 6),))
def _softmax() -> nn.Module:
    return _Softmax()


class _Activations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.prelu = nn.PReLU(4)
        self.acts = nn.ModuleList([
            nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Hardswish(), nn.Mish(),
            nn.ELU(), nn.SELU(), nn.CELU(0.7), nn.LeakyReLU(0.2), nn.Softplus(beta=2.0),
            nn.Hardsigmoid(), nn.Hardtanh(-0.5, 0.7), nn.Sigmoid(), nn.Tanh(), nn.Softsign(),
            nn.LogSigmoid(), nn.Tanhshrink(), nn.Hardshrink(0.3), nn.Softshrink(0.3),
            nn.Threshold(0.1, -1.0), nn.ReLU6(), nn.GLU(1)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [self.prelu(x)]
        for act in self.acts:
            outs.append(act(x))
        return outs


@case("activations", lambda b: (_rand(b, 4, 6) * 3,))
def _acts() -> nn.Module:
    return _Activations()


class _Elementwise(nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> tuple:
        p = x.abs() + 0.1
        return (torch.sqrt(p), torch.rsqrt(p), torch.exp(x), torch.log(p), torch.log1p(p),
                p ** 1.7, x ** 2, 2.0 ** x, torch.clamp(x, -0.5, 0.6), torch.clamp(x, min=0.1),
                torch.floor(x), torch.ceil(x), torch.round(x * 3), torch.trunc(x * 3),
                torch.sign(x), torch.sin(x), torch.cos(x), torch.atan2(x, p),
                torch.reciprocal(p), torch.erf(x), x.remainder(0.7), torch.fmod(x, 0.7),
                n // 3, n % 3, n * 2 + 1, n / 2, torch.div(n, -3, rounding_mode="trunc"),
                torch.div(-n, 3, rounding_mode="floor"), (n > 2) & (n < 7), ~(n == 4),
                torch.maximum(x, p - 1), torch.minimum(x, -p), x.float() * n,
                n.to(torch.float32), (x * 10).to(torch.int32), torch.isnan(x / p),
                torch.bitwise_xor(n, 5), torch.lerp(x, p, 0.3), torch.addcmul(x, x, p, value=0.5),
                torch.hypot(x, p), torch.logical_or(x > 0, n > 5), torch.square(x))


@case("elementwise_math", lambda b: (_rand(b, 5), torch.arange(b * 5).reshape(b, 5) % 11))
def _elem() -> nn.Module:
    return _Elementwise()


class _Conv1dTranspose(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 6, 3, padding=2, dilation=2)
        self.pool = nn.MaxPool1d(2)
        self.up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
        self.up_g = nn.ConvTranspose1d(6, 4, 4, stride=2, groups=2)
        self.c3 = nn.Conv3d(2, 2, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, img: torch.Tensor, vol: torch.Tensor) -> tuple:
        return self.up_g(self.pool(self.c1(x))), self.up(img), self.c3(vol)


@case("conv1d_3d_conv_transpose",
      lambda b: (_rand(b, 3, 10), _rand(b, 4, 5, 6, seed=1), _rand(b, 2, 2, 5, 5, seed=2)))
def _convt() -> nn.Module:
    return _Conv1dTranspose()


class _Pooling(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (F.avg_pool2d(x, 3, stride=2, padding=1), F.avg_pool2d(x, 2, ceil_mode=True),
                F.max_pool2d(x, 2, stride=1, dilation=2), F.adaptive_avg_pool2d(x, (1, 1)),
                F.adaptive_avg_pool2d(x, (3, 2)), F.lp_pool2d(x.abs(), 2, 2),
                F.adaptive_max_pool2d(x, 1), F.avg_pool1d(x.flatten(2), 4),
                F.max_pool2d(x, 2, return_indices=True)[1], F.adaptive_max_pool2d(x, (3, 4)))


@case("pooling", lambda b: (_rand(b, 3, 7, 6),))
def _pool() -> nn.Module:
    return _Pooling()


class _PadShuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)

    def forward(self, x: torch.Tensor) -> tuple:
        return (F.pad(x, (1, 2, 0, 1)), F.pad(x, (2, 1, 1, 2), mode="reflect"),
                F.pad(x, (1, 1, 2, 0), mode="replicate"), F.pad(x, (1, 1), value=3.0),
                self.shuffle(x), self.unshuffle(x), F.pad(x, (1, 1, 1, 1), mode="circular"))


@case("pad_pixel_shuffle", lambda b: (_rand(b, 4, 4, 6),), scriptable=False)
def _pad() -> nn.Module:
    return _PadShuffle()


class _MatMuls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 5))
        self.bil = nn.Bilinear(6, 4, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        a = x @ self.w
        b = torch.bmm(x, x.transpose(1, 2))
        c = torch.einsum("bij,bkj->bik", x, x)
        d = torch.matmul(x[:, 0], self.w)
        e = torch.baddbmm(b, x, x.transpose(1, 2), beta=0.5, alpha=2.0)
        return a, b, c, d, e, self.bil(x[:, 0], y), torch.outer(y[0], y[1])


@case("matmul_bmm_einsum", lambda b: (_rand(b, 3, 6), _rand(b, 4, seed=1)))
def _mm() -> nn.Module:
    return _MatMuls()


class _Shapes(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        b = x.shape[0]
        flat = x.reshape(b, -1)
        v = x.view(-1, 4)
        perm = x.permute(2, 0, 1)
        sq = x.unsqueeze(0).squeeze(0)
        rep = x.repeat(1, 2, 1)
        tiled = torch.tile(x, (2, 1, 1))
        ones = torch.ones(b, 3) * x.mean()
        full = torch.full_like(x, 2.5) + torch.zeros(x.shape)
        nar = x.narrow(2, 1, 2)
        return flat, v, perm, sq, rep, tiled, ones, full, nar, x.new_zeros(b, 2), \
            torch.triu(x, 1), torch.tril(x), x.unflatten(2, (2, 2))


@case("reshape_view_permute_expand", lambda b: (_rand(b, 3, 4),))
def _shapes() -> nn.Module:
    return _Shapes()


class _SimpleRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(5, 7, num_layers=2, nonlinearity="tanh", batch_first=True,
                          bidirectional=True)
        self.rnn_relu = nn.RNN(14, 3, nonlinearity="relu", batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple:
        y, h = self.rnn(x)
        z, _ = self.rnn_relu(y)
        return z, h


@case("rnn_tanh_relu", lambda b: (_rand(b, 4, 5),), batch_axes=(0,))
def _rnn() -> nn.Module:
    return _SimpleRNN()


class _TopK(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        v, i = torch.topk(x, 3, dim=1)
        s, si = torch.sort(x, dim=-1, descending=True)
        return v, i, s, si, torch.argsort(x, 1), torch.cumprod(x, 1), torch.clamp(x.argmax(-1), 0, 3)


@case("topk_sort_cumulative", lambda b: (_rand(b, 7),))
def _topk() -> nn.Module:
    return _TopK()


def _bert() -> nn.Module:
    import transformers

    cfg = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=32, type_vocab_size=2,
                                  attn_implementation="eager")
    return transformers.BertModel(cfg)


def _bert_inputs(b: int) -> tuple:
    g = torch.Generator().manual_seed(b)
    ids = torch.randint(1, 64, (b, 8), generator=g)
    mask = torch.ones(b, 8, dtype=torch.int64)
    mask[0, 6:] = 0
    types = torch.zeros(b, 8, dtype=torch.int64)
    types[:, 4:] = 1
    return ids, mask, types


class _HFWrapper(nn.Module):
    """Returns the model outputs as a tuple of tensors (a ModelOutput is a dict)."""

    def __init__(self, model: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return tuple(out[k] for k in self.keys)


class _BertWrapper(_HFWrapper):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,  # type: ignore[override]
                token_type_ids: torch.Tensor) -> tuple:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids)
        return tuple(out[k] for k in self.keys)


@case("bert", _bert_inputs, scriptable=False, slow=True, tags={"transformers"})
def _bert_model() -> nn.Module:
    return _BertWrapper(_bert(), ("last_hidden_state", "pooler_output"))


def _gpt2_inputs(b: int) -> tuple:
    g = torch.Generator().manual_seed(b)
    ids = torch.randint(0, 64, (b, 7), generator=g)
    mask = torch.ones(b, 7, dtype=torch.int64)
    return ids, mask


@case("gpt2", _gpt2_inputs, scriptable=False, slow=True, tags={"transformers"})
def _gpt2_model() -> nn.Module:
    import transformers

    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                  attn_implementation="eager", use_cache=False,
                                  bos_token_id=0, eos_token_id=0)
    return _HFWrapper(transformers.GPT2LMHeadModel(cfg), ("logits",))


class _Misc(nn.Module):
    """Odd corners of the op table: negative indices, symbolic creation, mixed dtypes."""

    def forward(self, x: torch.Tensor, n: torch.Tensor, flag: torch.Tensor) -> tuple:
        b = x.shape[0]
        y = x.clone()
        y[:, 1:3, [0, 2]] = 7.0  # index_put with index dims after a slice
        picked = x[:, -1, -2]
        tail = x[:, :, -3:-1:1]
        rev = x[..., 1:].flip(-1)
        fl = torch.arange(0.0, 1.0, 0.25) * x.mean()
        made = x.new_ones(b, 3) * 2 - torch.full((b, 1), 0.5)
        counts = n.cumsum(1, dtype=torch.int32)
        which = torch.where(flag, 1.0, -1.0)
        mn, amn = x.min(dim=2)
        am = x.argmax(1, keepdim=True)
        r = 1 - x
        normed = F.normalize(x, dim=-1)
        unsh = F.pixel_unshuffle(x[:, None, :2, :], 2)
        flat_max = x.max()
        med = x.median()
        asc, _ = x.sort(dim=1)
        anyf = flag.any()
        mixed = n * 0.5 + x[:, 0, :2]
        cmp = (n.to(torch.int32) > x[:, 0, :2]).to(torch.int64)
        return (y, picked, tail, rev, fl, made, counts, which, mn, amn, am, r, normed, unsh,
                flat_max, med, asc, anyf, mixed, cmp)


@case("misc_ops", lambda b: (_rand(b, 3, 4), torch.arange(b * 2).reshape(b, 2) - 3,
                             torch.arange(b) % 2 == 0), scriptable=False)
def _misc() -> nn.Module:
    return _Misc()
