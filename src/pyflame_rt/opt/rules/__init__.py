"""Fusion rules, one module per family; see each module's docstring for the math.

``basic_rule_set()`` is the BASIC-level fusion pass; ``extended_rule_sets()`` the EXTENDED
passes, in the order they must run (attention before the MatMul fusions eat its projections,
GELU before the activation fusions pick it up, the embedding LayerNorm before SkipLayerNorm
takes its last Add, BiasSoftmax after attention so it never takes an attention mask).
"""

from __future__ import annotations

from ..levels import OptLevel
from ..pattern import RuleSet
from .activation import activation_rules
from .attention import attention_rules
from .batchnorm import batchnorm_rules
from .bias_softmax import bias_softmax_rules
from .conv import conv_rules
from .embed_layernorm import embed_layernorm_rules
from .gelu import gelu_rules
from .gemm import gemm_rules
from .layernorm import layernorm_rules, skip_layernorm_rules
from .matmul import matmul_rules
from .onnx_attention import onnx_attention_rules
from .quickgelu import quickgelu_rules
from .rmsnorm import rmsnorm_rules

__all__ = ["basic_rule_set", "extended_rule_sets"]


def basic_rule_set() -> RuleSet:
    return RuleSet(conv_rules() + gemm_rules(), name="basic_fusions", level=OptLevel.BASIC,
                   after=("constant_folding", "simplify"))


def extended_rule_sets() -> list[RuleSet]:
    ext = OptLevel.EXTENDED
    return [
        RuleSet(gelu_rules(), name="gelu_fusion", level=ext),
        RuleSet(quickgelu_rules(), name="quickgelu_fusion", level=ext),
        RuleSet(layernorm_rules(), name="layernorm_fusion", level=ext),
        RuleSet(rmsnorm_rules(), name="rmsnorm_fusion", level=ext),
        RuleSet(embed_layernorm_rules(), name="embed_layernorm_fusion", level=ext,
                after=("layernorm_fusion",), before=("skip_layernorm_fusion",)),
        RuleSet(attention_rules(), name="attention_fusion", level=ext,
                after=("layernorm_fusion",)),
        RuleSet(onnx_attention_rules(), name="onnx_attention_fusion", level=ext),
        RuleSet(bias_softmax_rules(), name="bias_softmax_fusion", level=ext,
                after=("attention_fusion",)),
        RuleSet(skip_layernorm_rules(), name="skip_layernorm_fusion", level=ext,
                after=("layernorm_fusion",)),
        RuleSet(matmul_rules(), name="matmul_fusion", level=ext,
                after=("attention_fusion", "onnx_attention_fusion")),
        RuleSet(batchnorm_rules(), name="batchnorm_activation_fusion", level=ext),
        RuleSet(activation_rules(), name="activation_fusion", level=ext,
                after=("gelu_fusion", "matmul_fusion")),
    ]
