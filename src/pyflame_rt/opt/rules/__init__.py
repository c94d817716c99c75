"""Fusion rules, one module per family; see each module's docstring for the math.

``basic_rule_set()`` is the BASIC-level fusion pass; ``extended_rule_sets()`` the EXTENDED
passes, in the order they must run (attention before the MatMul fusions eat its projections,
GELU before the activation fusions pick it up).
"""

from __future__ import annotations

from ..levels import OptLevel
from ..pattern import RuleSet
from .activation import activation_rules
from .attention import attention_rules
from .conv import conv_rules
from .gelu import gelu_rules
from .gemm import gemm_rules
from .layernorm import layernorm_rules, skip_layernorm_rules
from .matmul import matmul_rules

__all__ = ["basic_rule_set", "extended_rule_sets"]


def basic_rule_set() -> RuleSet:
    return RuleSet(conv_rules() + gemm_rules(), name="basic_fusions", level=OptLevel.BASIC,
                   after=("constant_folding", "simplify"))


def extended_rule_sets() -> list[RuleSet]:
    ext = OptLevel.EXTENDED
    return [
        RuleSet(gelu_rules(), name="gelu_fusion", level=ext),
        RuleSet(layernorm_rules(), name="layernorm_fusion", level=ext),
        RuleSet(attention_rules(), name="attention_fusion", level=ext,
                after=("layernorm_fusion",)),
        RuleSet(skip_layernorm_rules(), name="skip_layernorm_fusion", level=ext,
                after=("layernorm_fusion",)),
        RuleSet(matmul_rules(), name="matmul_fusion", level=ext,
                after=("attention_fusion",)),
        RuleSet(activation_rules(), name="activation_fusion", level=ext,
                after=("gelu_fusion", "matmul_fusion")),
    ]
