"""Per-step verdicts and the metrics over them.

For each step: ``parsed`` (the prediction is an action), ``type_correct``, ``step_correct`` (``matching``),
``tfidf`` (FedMABench's cosine) and ``tfidf_correct`` (> 0.6). Over a set of steps (``summarize``), as fractions:

* type_accuracy, step_success, tfidf_step_accuracy: mean of the step flags; unparseable: count of unparsed steps.
* episode_success / tfidf_episode_accuracy: fraction of episodes whose every scored step is correct (an episode is
  the set of steps with the same episode id).

``score`` returns the overall summary plus breakdowns ``by_action_type`` (gold type; no episode metrics, an episode
mixes types), ``by_app``, ``by_category`` and ``by_subsplit`` (a step counts in every sub-split it belongs to).
"""

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from swift_ext.evaluation.actions import UNPARSEABLE
from swift_ext.evaluation.matching import MatchOptions, step_correct
from swift_ext.evaluation.parsers import parse_action
from swift_ext.evaluation.steps import EvalStep
from swift_ext.evaluation.tfidf import TFIDF_THRESHOLD, tfidf_cosine


@dataclass(frozen=True)
class StepVerdict:
    episode: str
    step: int
    gold_type: str
    predicted_type: str
    parsed: bool
    type_correct: bool
    step_correct: bool
    tfidf: float
    tfidf_correct: bool
    app: Optional[str]
    category: Optional[str]
    subsplits: Sequence[str]
    gold_text: str
    prediction: str
    prompt_tokens: Optional[int] = None


def judge(
    step: EvalStep, prediction: str, prompt_format: str, options: MatchOptions, prompt_tokens: Optional[int] = None
) -> StepVerdict:
    """The verdict on ``prediction`` (model text) for ``step``; ``prompt_tokens``: the prompt length the model saw
    (images included), when known."""
    pred = parse_action(prediction, prompt_format)
    similarity = tfidf_cosine(step.gold_text, prediction)
    return StepVerdict(
        episode=step.episode,
        step=step.step,
        gold_type=step.gold.type,
        predicted_type=pred.type,
        parsed=pred.type != UNPARSEABLE,
        type_correct=pred.type == step.gold.type,
        step_correct=step_correct(pred, step.gold, options),
        tfidf=similarity,
        tfidf_correct=similarity > TFIDF_THRESHOLD,
        app=step.app,
        category=step.category,
        subsplits=tuple(step.subsplits),
        gold_text=step.gold_text,
        prediction=prediction,
        prompt_tokens=prompt_tokens,
    )


def _mean(flags: List[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _episode_rate(verdicts: Sequence[StepVerdict], flag: str) -> float:
    episodes: Dict[str, bool] = defaultdict(lambda: True)
    for verdict in verdicts:
        episodes[verdict.episode] &= getattr(verdict, flag)
    return _mean(list(episodes.values()))


def summarize(verdicts: Sequence[StepVerdict], episodes: bool = True) -> Dict[str, float]:
    """The metrics of the module docstring over ``verdicts``."""
    summary: Dict[str, float] = {
        'steps': len(verdicts),
        'unparseable': sum(not v.parsed for v in verdicts),
        'type_accuracy': _mean([v.type_correct for v in verdicts]),
        'step_success': _mean([v.step_correct for v in verdicts]),
        'tfidf_step_accuracy': _mean([v.tfidf_correct for v in verdicts]),
    }
    if episodes:
        summary['episodes'] = len({v.episode for v in verdicts})
        summary['episode_success'] = _episode_rate(verdicts, 'step_correct')
        summary['tfidf_episode_accuracy'] = _episode_rate(verdicts, 'tfidf_correct')
    return summary


BREAKDOWNS: Dict[str, tuple] = {
    # name: (the groups of a verdict, whether episode metrics mean something within a group)
    'by_action_type': (lambda v: [v.gold_type], False),
    'by_app': (lambda v: [v.app] if v.app else [], True),
    'by_category': (lambda v: [v.category] if v.category else [], True),
    'by_subsplit': (lambda v: list(v.subsplits), True),
}


def _grouped(verdicts: Iterable[StepVerdict], groups: Callable[[StepVerdict], List[str]]) -> Dict[str, list]:
    grouped: Dict[str, list] = defaultdict(list)
    for verdict in verdicts:
        for group in groups(verdict):
            grouped[str(group)].append(verdict)
    return dict(sorted(grouped.items()))


def score(verdicts: Sequence[StepVerdict]) -> Dict[str, object]:
    """``{'overall': summary, 'by_action_type': {type: summary}, 'by_app': ..., 'by_category': ...,
    'by_subsplit': ...}``; breakdowns without any labelled step are empty dicts."""
    result: Dict[str, object] = {'overall': summarize(verdicts)}
    for name, (groups, episodes) in BREAKDOWNS.items():
        result[name] = {group: summarize(vs, episodes) for group, vs in _grouped(verdicts, groups).items()}
    return result


def verdict_row(verdict: StepVerdict) -> Dict[str, object]:
    """A JSON-ready row of one verdict (for predictions.jsonl)."""
    return {**asdict(verdict), 'subsplits': list(verdict.subsplits)}
