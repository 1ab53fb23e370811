"""Generation with ms-swift's TransformersEngine over evaluation steps, and ``evaluate_generation`` for the round
loop.

Every step is answered from its own prompt (the conversation up to that step, gold answers as history); greedy
decoding. A request the engine cannot encode or answer gets the empty prediction, which scores as unparseable.
Images are resized as ms-swift's environment says (``swift_ext.template.pixel_settings``).
"""

import logging
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from swift_ext.evaluation.matching import DEFAULT_OPTIONS, MatchOptions
from swift_ext.evaluation.scoring import StepVerdict, judge, score
from swift_ext.evaluation.steps import EvalStep, conversation_steps

logger = logging.getLogger(__name__)


def _image(image: object) -> object:
    """ms-swift datasets may hold images as {'path': ..., 'bytes': ...}; the engine takes a path or bytes."""
    if isinstance(image, Mapping):
        return image.get('path') or image.get('bytes')
    return image


@dataclass(frozen=True)
class Generation:
    """A model's answer to one step: its text and the prompt length the engine saw in tokens (images included;
    None when the engine failed on the request or the text was generated elsewhere, e.g. by ``swift infer``)."""

    text: str
    prompt_tokens: Optional[int] = None


def _generation(response: object) -> Generation:
    if not hasattr(response, 'choices'):  # the engine returns the exception in place of a failed request
        return Generation('')
    return Generation(response.choices[0].message.content or '', response.usage.prompt_tokens)


def generate(
    engine: object,
    steps: Sequence[EvalStep],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 4,
    use_tqdm: bool = True,
) -> List[Generation]:
    """The engine's greedy answer to each step's prompt, in order, ``batch_size`` prompts per generate call."""
    from swift.infer_engine import InferRequest, RequestConfig

    requests = [InferRequest(messages=list(s.messages), images=[_image(i) for i in s.images]) for s in steps]
    config = RequestConfig(max_tokens=max_new_tokens, temperature=0)
    engine.max_batch_size = batch_size
    responses = engine.infer(requests, config, use_tqdm=use_tqdm)
    failed = sum(not hasattr(r, 'choices') for r in responses)
    if failed:
        logger.warning('%d of %d requests failed in the engine; they score as unparseable', failed, len(requests))
    return [_generation(response) for response in responses]


def adapter_engines(
    model: str, adapters: Sequence[Optional[str]], model_type: Optional[str] = None, template: Optional[str] = None
) -> Iterator[Tuple[Optional[str], object]]:
    """(adapter, engine) for each adapter directory (None: the base model), loading the base model once: each
    adapter is attached with PEFT, served, and unloaded again before the next. (ms-swift's per-request
    AdapterRequest fails on batches larger than one in ms-swift 4.6, hence one engine per adapter.)"""
    from peft import PeftModel
    from swift.infer_engine import TransformersEngine

    base_engine = TransformersEngine(model, model_type=model_type, template_type=template)
    base = base_engine.model
    for adapter in adapters:
        if adapter is None:
            yield None, base_engine
            continue
        peft_model = PeftModel.from_pretrained(base, adapter)
        yield adapter, TransformersEngine(peft_model, template=base_engine.template)
        base = peft_model.unload()


def judge_all(
    steps: Sequence[EvalStep], generations: Sequence[Generation], prompt_format: str, options: MatchOptions
) -> List[StepVerdict]:
    """The verdict on each step's generation (same order and length)."""
    return [
        judge(step, generation.text, prompt_format, options, generation.prompt_tokens)
        for step, generation in zip(steps, generations, strict=True)
    ]


def evaluate_generation(
    model: object,
    template: object,
    rows: Sequence[Mapping],
    *,
    prompt_format: str = 'fedmabench',
    options: MatchOptions = DEFAULT_OPTIONS,
    max_new_tokens: int = 128,
    batch_size: int = 4,
) -> Dict[str, object]:
    """Generation metrics of an in-memory ``model`` (e.g. the PEFT-wrapped global model of a round) on ``rows``.

    rows: test/validation rows (dicts as in the jsonl: ``conversations`` or ``messages``, ``images``, optional
    ``episode_id``/``app``/``category``/``acts_origin``), or rows of a dataset ms-swift loaded (``messages`` turns
    as JSON strings, ``images`` as {'path', 'bytes'}). template: the ms-swift Template the model was trained
    with. Returns ``scoring.score``'s dict (``overall`` with steps, unparseable, type_accuracy, step_success,
    episode_success, tfidf_step_accuracy, tfidf_episode_accuracy; breakdowns). The model's train/eval mode and the
    template's mode are restored on return; no weights change.
    """
    from swift.infer_engine import TransformersEngine

    steps = rows_steps(rows, prompt_format)
    was_training, mode = getattr(model, 'training', False), getattr(template, 'mode', None)
    try:
        engine = TransformersEngine(model, template=template)
        generations = generate(engine, steps, max_new_tokens=max_new_tokens, batch_size=batch_size, use_tqdm=False)
    finally:
        if mode is not None:
            template.set_mode(mode)
        model.train(was_training)
    return score(judge_all(steps, generations, prompt_format, options))


def rows_steps(rows: Sequence[Mapping], prompt_format: str) -> List[EvalStep]:
    """The steps of in-memory rows (``evaluate_generation``'s ``rows``); errors name the row number (1-based)."""
    return [step for n, row in enumerate(rows, 1) for step in conversation_steps(row, prompt_format, f'row {n}', n)]
