"""RuleSets (QRNA): the model and its schema, QuISP import, static install checks, the executor
and the messages RuleSets exchange. See docs/rulesets.md."""

from .messages import Notice, PurificationResult, RuleSetMessage, SwapResult, message_from_wire
from .model import RuleSet, Rule, Stage

__all__ = ["Notice", "PurificationResult", "Rule", "RuleSet", "RuleSetMessage", "Stage",
           "SwapResult", "message_from_wire"]
