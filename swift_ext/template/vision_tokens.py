"""Qwen2-VL vision token ids, read from the tokenizer and checked against the model config.

ms-swift's template hard-codes ``image_token_id = 151655``; a tokenizer with a different vocabulary then trains on
the wrong positions ("Could not find vision tokens", "Image token count 391 != 1530"). Here the ids come from the
tokenizer and must agree with every id the model config states.
"""

from dataclasses import dataclass
from typing import Any, Dict

# token text -> the model config attribute holding its id
VISION_TOKENS: Dict[str, str] = {
    '<|vision_start|>': 'vision_start_token_id',
    '<|vision_end|>': 'vision_end_token_id',
    '<|image_pad|>': 'image_token_id',
    '<|video_pad|>': 'video_token_id',
}


@dataclass(frozen=True)
class VisionTokenIds:
    """The four vision token ids of one tokenizer/model pair."""

    vision_start: int
    vision_end: int
    image: int
    video: int


def _token_id(tokenizer: Any, token: str) -> int:
    """The id of ``token`` as one vocabulary entry; ValueError when the tokenizer lacks it."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    unk_id = getattr(tokenizer, 'unk_token_id', None)
    if token_id is None or (unk_id is not None and token_id == unk_id):
        raise ValueError(
            f'The tokenizer ({type(tokenizer).__name__}, {getattr(tokenizer, "name_or_path", "?")}) has no '
            f'{token} token, which Qwen2-VL needs. Load the tokenizer that ships with the model '
            '(the model directory given to --model).'
        )
    return int(token_id)


def _config_id(config: Any, attribute: str) -> Any:
    """``config.<attribute>``, also looked up in ``config.text_config`` (transformers 5.x nests some ids there)."""
    value = getattr(config, attribute, None)
    if value is None:
        value = getattr(getattr(config, 'text_config', None), attribute, None)
    return value


def resolve_vision_token_ids(tokenizer: Any, config: Any) -> VisionTokenIds:
    """Vision token ids from ``tokenizer``; ValueError naming every token whose id disagrees with ``config``.

    A config that does not state an id is not checked for it (the tokenizer is then the only source).
    """
    ids = {token: _token_id(tokenizer, token) for token in VISION_TOKENS}
    mismatches = [
        f'{token}: tokenizer {ids[token]}, config.{attribute} {_config_id(config, attribute)}'
        for token, attribute in VISION_TOKENS.items()
        if _config_id(config, attribute) is not None and int(_config_id(config, attribute)) != ids[token]
    ]
    if mismatches:
        raise ValueError(
            'The tokenizer and the model config disagree on Qwen2-VL vision token ids ('
            + '; '.join(mismatches)
            + '). The tokenizer does not belong to this model: load both from the same model directory (--model), '
            'or fix the ids in config.json.'
        )
    return VisionTokenIds(
        vision_start=ids['<|vision_start|>'],
        vision_end=ids['<|vision_end|>'],
        image=ids['<|image_pad|>'],
        video=ids['<|video_pad|>'],
    )
