"""Model shapes by size name, for the offline random-weight checkpoints of ``data_tools.tiny_model``.

Two families, each with four sizes:

- ``tiny``: the test model (text hidden 64, 2 layers, vision depth 1). Steps take ~0.1 s on CPU, so only fixed
  per-run and per-client costs show.
- ``small``: ~120M parameters for CPU benchmarks, where an optimizer step costs real time. Its decoder heads are 128
  wide, as in the released models, so M-RoPE keeps the released (16, 24, 24) sections; the vision heads are 80 wide
  (1280 / 16 in the released towers).
- ``2b`` / ``7b`` (Qwen2-VL) and ``3b`` / ``7b`` (Qwen2.5-VL, which has no 2B): the shapes of the released
  ``-Instruct`` checkpoints' ``config.json`` (URL in each preset's ``source``), with random weights. For GPU machines.

Field names are the released ``config.json``'s: ``text`` holds the decoder fields (top level of the released file),
``vision`` the ``vision_config`` fields that fix shapes. The vision tower's output width (Qwen2-VL ``hidden_size``,
Qwen2.5-VL ``out_hidden_size``) always equals the decoder's ``hidden_size``.
"""

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

QWEN2_VL, QWEN2_5_VL = 'qwen2_vl', 'qwen2_5_vl'
FAMILIES = (QWEN2_VL, QWEN2_5_VL)
ROPE_THETA = 1000000.0  # every released Qwen2-VL / Qwen2.5-VL decoder
RELEASED_MROPE_SECTION = (16, 24, 24)  # (temporal, height, width) of 128-wide heads' 64 rotary frequencies
VOCAB_SIZE_SMALL, VOCAB_SIZE_LARGE = 151936, 152064  # embedding rows of the 2B/3B and of the 7B checkpoints


@dataclass(frozen=True)
class ModelPreset:
    """The shapes of one checkpoint: ``family`` and ``size`` name it, ``source`` says where the numbers come from."""

    family: str
    size: str
    text: Mapping[str, Any]
    mrope_section: Tuple[int, int, int]
    vision: Mapping[str, Any]
    source: str


def _qwen2_vl_vision(text_hidden: int, depth: int, embed_dim: int, num_heads: int, mlp_ratio: int) -> Dict[str, Any]:
    return {
        'depth': depth,
        'embed_dim': embed_dim,
        'num_heads': num_heads,
        'mlp_ratio': mlp_ratio,
        'hidden_size': text_hidden,
        'patch_size': 14,
        'spatial_merge_size': 2,
        'temporal_patch_size': 2,
        'in_channels': 3,
    }


def _qwen2_5_vl_vision(
    text_hidden: int, depth: int, hidden_size: int, intermediate_size: int, num_heads: int, full_attention: Tuple
) -> Dict[str, Any]:
    return {
        'depth': depth,
        'hidden_size': hidden_size,
        'intermediate_size': intermediate_size,
        'num_heads': num_heads,
        'out_hidden_size': text_hidden,
        'hidden_act': 'silu',
        'patch_size': 14,
        'spatial_merge_size': 2,
        'temporal_patch_size': 2,
        'in_channels': 3,
        'window_size': 112,
        'fullatt_block_indexes': list(full_attention),
        'tokens_per_second': 2,
    }


def _text(
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    max_positions: int,
    eps: float,
    tied: bool,
) -> Dict[str, Any]:
    return {
        'vocab_size': vocab,
        'hidden_size': hidden,
        'intermediate_size': intermediate,
        'num_hidden_layers': layers,
        'num_attention_heads': heads,
        'num_key_value_heads': kv_heads,
        'max_position_embeddings': max_positions,
        'rms_norm_eps': eps,
        'hidden_act': 'silu',
        'tie_word_embeddings': tied,
    }


def _hf(repo: str) -> str:
    return f'https://huggingface.co/{repo}/blob/main/config.json'


# The tiny text decoder is the test model's since the project began: transformers' default rms_norm_eps (1e-5), and
# M-RoPE sections split 2:3:3 over its 16-wide heads' 8 rotary frequencies.
_TINY_TEXT = _text(64, 128, 2, 4, 2, VOCAB_SIZE_SMALL, 32768, 1e-5, tied=True)
_SMALL_TEXT = _text(512, 2816, 8, 4, 2, VOCAB_SIZE_SMALL, 32768, 1e-6, tied=True)
_BENCHMARK = 'benchmark size of this project (not a released model)'

PRESETS: Dict[Tuple[str, str], ModelPreset] = {
    (QWEN2_VL, 'tiny'): ModelPreset(
        QWEN2_VL, 'tiny', _TINY_TEXT, (2, 3, 3), _qwen2_vl_vision(64, 1, 32, 2, 2), 'test model of this project'
    ),
    (QWEN2_VL, 'small'): ModelPreset(
        QWEN2_VL, 'small', _SMALL_TEXT, RELEASED_MROPE_SECTION, _qwen2_vl_vision(512, 4, 320, 4, 4), _BENCHMARK
    ),
    (QWEN2_VL, '2b'): ModelPreset(
        QWEN2_VL,
        '2b',
        _text(1536, 8960, 28, 12, 2, VOCAB_SIZE_SMALL, 32768, 1e-6, tied=True),
        RELEASED_MROPE_SECTION,
        _qwen2_vl_vision(1536, 32, 1280, 16, 4),
        _hf('Qwen/Qwen2-VL-2B-Instruct'),
    ),
    (QWEN2_VL, '7b'): ModelPreset(
        QWEN2_VL,
        '7b',
        _text(3584, 18944, 28, 28, 4, VOCAB_SIZE_LARGE, 32768, 1e-6, tied=False),
        RELEASED_MROPE_SECTION,
        _qwen2_vl_vision(3584, 32, 1280, 16, 4),
        _hf('Qwen/Qwen2-VL-7B-Instruct'),
    ),
    (QWEN2_5_VL, 'tiny'): ModelPreset(
        QWEN2_5_VL,
        'tiny',
        _TINY_TEXT,
        (2, 3, 3),
        _qwen2_5_vl_vision(64, 1, 32, 64, 2, (0,)),
        'test model of this project',
    ),
    (QWEN2_5_VL, 'small'): ModelPreset(
        QWEN2_5_VL,
        'small',
        _SMALL_TEXT,
        RELEASED_MROPE_SECTION,
        _qwen2_5_vl_vision(512, 4, 320, 864, 4, (3,)),
        _BENCHMARK,
    ),
    (QWEN2_5_VL, '3b'): ModelPreset(
        QWEN2_5_VL,
        '3b',
        _text(2048, 11008, 36, 16, 2, VOCAB_SIZE_SMALL, 128000, 1e-6, tied=True),
        RELEASED_MROPE_SECTION,
        _qwen2_5_vl_vision(2048, 32, 1280, 3420, 16, (7, 15, 23, 31)),
        _hf('Qwen/Qwen2.5-VL-3B-Instruct'),
    ),
    (QWEN2_5_VL, '7b'): ModelPreset(
        QWEN2_5_VL,
        '7b',
        _text(3584, 18944, 28, 28, 4, VOCAB_SIZE_LARGE, 128000, 1e-6, tied=False),
        RELEASED_MROPE_SECTION,
        _qwen2_5_vl_vision(3584, 32, 1280, 3420, 16, (7, 15, 23, 31)),
        _hf('Qwen/Qwen2.5-VL-7B-Instruct'),
    ),
}


def sizes(family: str) -> Tuple[str, ...]:
    return tuple(size for preset_family, size in PRESETS if preset_family == family)


def get_preset(family: str, size: str) -> ModelPreset:
    """The preset of ``family`` at ``size``; a ValueError names the valid choices."""
    if family not in FAMILIES:
        raise ValueError(f'Unknown model family {family!r}: choose one of {", ".join(FAMILIES)}.')
    if (family, size) not in PRESETS:
        raise ValueError(f'{family} has no size {size!r}: choose one of {", ".join(sizes(family))}.')
    return PRESETS[(family, size)]
