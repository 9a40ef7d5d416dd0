from __future__ import annotations

import sys
from pathlib import Path

# The RuleSet property tests' physical-partner oracle is reused here, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ruleset"))
