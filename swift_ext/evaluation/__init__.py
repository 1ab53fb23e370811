"""GUI-agent action evaluation: parse model text into actions (``parsers``), match them against gold steps
(``matching``, ``tfidf``), aggregate (``scoring``), generate with ms-swift (``inference``), report (``report``) and
the ``swift-ext-eval`` command (``cli``)."""

from swift_ext.evaluation.actions import Action, gold_action
from swift_ext.evaluation.inference import evaluate_generation
from swift_ext.evaluation.matching import MatchOptions, step_correct
from swift_ext.evaluation.parsers import PARSERS, parse_action
from swift_ext.evaluation.scoring import score

__all__ = [
    'Action', 'MatchOptions', 'PARSERS', 'evaluate_generation', 'gold_action', 'parse_action', 'score', 'step_correct',
]  # fmt: skip
