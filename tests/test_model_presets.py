"""The model presets of ``data_tools.tiny_model``: released shapes, real token ids, parameter counts, loading.

The expected shapes below are copied by hand from the released checkpoints' ``config.json`` (URLs in RELEASED), not
from ``data_tools.model_presets``; the expected parameter counts come from the formula in ``expected_parameters``
(written here from the layer list of transformers' Qwen2-VL / Qwen2.5-VL modules) and, for the released sizes, from
the checkpoints' own totals. The 2B/3B/7B models are only instantiated on the ``meta`` device (no weights).
"""

import json
import os
from typing import Any, Dict

import pytest
import torch

from data_tools.model_presets import QWEN2_5_VL, QWEN2_VL, get_preset
from data_tools.tiny_model import FAMILY_CLASSES, build_checkpoint, build_config, build_tokenizer, count_parameters

# Released config.json fields, as published (text fields at the top level, vision fields under vision_config).
_QWEN2_VL_VISION = {
    'depth': 32,
    'embed_dim': 1280,
    'mlp_ratio': 4,
    'num_heads': 16,
    'patch_size': 14,
    'spatial_merge_size': 2,
    'temporal_patch_size': 2,
}
_QWEN2_5_VL_VISION = {
    'depth': 32,
    'hidden_size': 1280,
    'intermediate_size': 3420,
    'num_heads': 16,
    'patch_size': 14,
    'spatial_merge_size': 2,
    'temporal_patch_size': 2,
    'window_size': 112,
    'fullatt_block_indexes': [7, 15, 23, 31],
    'tokens_per_second': 2,
}
RELEASED = {
    # https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct/blob/main/config.json
    (QWEN2_VL, '2b'): {
        'text': {'hidden_size': 1536, 'intermediate_size': 8960, 'num_hidden_layers': 28, 'num_attention_heads': 12,
                 'num_key_value_heads': 2, 'vocab_size': 151936, 'max_position_embeddings': 32768,
                 'rms_norm_eps': 1e-6, 'tie_word_embeddings': True},
        'vision': {**_QWEN2_VL_VISION, 'hidden_size': 1536},
        'parameters': 2208985600,
    },
    # https://huggingface.co/Qwen/Qwen2-VL-7B-Instruct/blob/main/config.json
    (QWEN2_VL, '7b'): {
        'text': {'hidden_size': 3584, 'intermediate_size': 18944, 'num_hidden_layers': 28, 'num_attention_heads': 28,
                 'num_key_value_heads': 4, 'vocab_size': 152064, 'max_position_embeddings': 32768,
                 'rms_norm_eps': 1e-6, 'tie_word_embeddings': False},
        'vision': {**_QWEN2_VL_VISION, 'hidden_size': 3584},
        'parameters': 8291375616,
    },
    # https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json
    (QWEN2_5_VL, '3b'): {
        'text': {'hidden_size': 2048, 'intermediate_size': 11008, 'num_hidden_layers': 36, 'num_attention_heads': 16,
                 'num_key_value_heads': 2, 'vocab_size': 151936, 'max_position_embeddings': 128000,
                 'rms_norm_eps': 1e-6, 'tie_word_embeddings': True},
        'vision': {**_QWEN2_5_VL_VISION, 'out_hidden_size': 2048},
        'parameters': 3754622976,
    },
    # https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json
    (QWEN2_5_VL, '7b'): {
        'text': {'hidden_size': 3584, 'intermediate_size': 18944, 'num_hidden_layers': 28, 'num_attention_heads': 28,
                 'num_key_value_heads': 4, 'vocab_size': 152064, 'max_position_embeddings': 128000,
                 'rms_norm_eps': 1e-6, 'tie_word_embeddings': False},
        'vision': {**_QWEN2_5_VL_VISION, 'out_hidden_size': 3584},
        'parameters': 8292166656,
    },
}  # fmt: skip
# Every released Qwen2-VL / Qwen2.5-VL config: rope_theta 1e6, rope_scaling {"type": "mrope", "mrope_section": [16, 24,
# 24]}, and these token ids; the tokenizer puts the same tokens at the same ids.
RELEASED_ROPE = (1000000.0, [16, 24, 24])
VISION_TOKEN_IDS = {
    'vision_start_token_id': ('<|vision_start|>', 151652),
    'vision_end_token_id': ('<|vision_end|>', 151653),
    'image_token_id': ('<|image_pad|>', 151655),
    'video_token_id': ('<|video_pad|>', 151656),
}
ALL_PRESETS = [(family, size) for family in (QWEN2_VL, QWEN2_5_VL) for size in ('tiny', 'small')] + list(RELEASED)


def rope_of(text_config: Any) -> tuple:
    """(rope_theta, mrope_section) under transformers 5.x (rope_parameters) or 4.57 (rope_theta + rope_scaling)."""
    params = getattr(text_config, 'rope_parameters', None)
    if params:
        return params['rope_theta'], list(params['mrope_section'])
    return text_config.rope_theta, list(text_config.rope_scaling['mrope_section'])


def expected_parameters(family: str, text: Dict[str, Any], vision: Dict[str, Any]) -> int:
    """Parameters of the transformers model, counted layer by layer (a tied output matrix once).

    Decoder (both families): embedding; per layer q/k/v projections with bias, o without, gate/up/down without bias,
    two RMSNorm weights; the final RMSNorm; lm_head unless tied. Vision tower: Conv3d patch embedding without bias
    (3 channels x 2 frames x 14 x 14); per block two norms, qkv and proj with bias, and the MLP; the patch merger
    (a norm, then Linear(4w, 4w) and Linear(4w, text hidden), with bias). Qwen2-VL's tower uses LayerNorm (weight +
    bias) and fc1/fc2 of width mlp_ratio * w; Qwen2.5-VL's uses RMSNorm (weight) and a gated gate/up/down MLP with bias.
    """
    h, vocab, heads = text['hidden_size'], text['vocab_size'], text['num_attention_heads']
    kv = text['num_key_value_heads'] * (h // heads)
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h
    layer = attention + 3 * h * text['intermediate_size'] + 2 * h
    decoder = vocab * h + text['num_hidden_layers'] * layer + h + (0 if text['tie_word_embeddings'] else vocab * h)
    if family == QWEN2_VL:
        w, norm = vision['embed_dim'], 2 * vision['embed_dim']
        m = w * vision['mlp_ratio']
        mlp = (w * m + m) + (m * w + w)
    else:
        w, norm, m = vision['hidden_size'], vision['hidden_size'], vision['intermediate_size']
        mlp = 2 * (w * m + m) + (m * w + w)
    block = 2 * norm + (w * 3 * w + 3 * w) + (w * w + w) + mlp
    merger = norm + (4 * w * 4 * w + 4 * w) + (4 * w * h + h)
    return decoder + 3 * 2 * 14 * 14 * w + vision['depth'] * block + merger


@pytest.mark.parametrize('family,size', list(RELEASED))
def test_released_sizes_have_the_published_shapes(family, size):
    config = build_config(get_preset(family, size))
    released = RELEASED[(family, size)]
    text = {name: getattr(config.text_config, name) for name in released['text']}
    vision = {name: getattr(config.vision_config, name) for name in released['vision']}
    vision = {name: list(value) if isinstance(value, tuple) else value for name, value in vision.items()}
    assert text == released['text']
    assert vision == released['vision']
    assert rope_of(config.text_config) == RELEASED_ROPE
    assert config.tie_word_embeddings is released['text']['tie_word_embeddings']


@pytest.mark.parametrize('family,size', ALL_PRESETS)
def test_every_preset_uses_the_real_vision_token_ids(family, size):
    config = build_config(get_preset(family, size))
    assert {name: getattr(config, name) for name in VISION_TOKEN_IDS} == {
        name: token_id for name, (_, token_id) in VISION_TOKEN_IDS.items()
    }


@pytest.mark.parametrize(
    'family,added,tokenizer_size',
    [
        (QWEN2_VL, {}, 151657),  # Qwen2-VL's tokenizer ends with <|video_pad|> = 151656
        (QWEN2_5_VL, {'<tool_call>': 151657, '</tool_call>': 151658, '<|file_sep|>': 151664}, 151665),
    ],
)
def test_tokenizers_put_the_released_tokens_at_the_released_ids(family, added, tokenizer_size):
    tokenizer = build_tokenizer(family)
    expected = {token: token_id for token, token_id in VISION_TOKEN_IDS.values()}
    expected.update({'<|endoftext|>': 151643, '<|im_start|>': 151644, '<|im_end|>': 151645, **added})
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in expected} == expected
    assert len(tokenizer) == tokenizer_size
    assert (len(tokenizer.tokenize('<tool_call>')) == 1) is bool(added)  # one token only where it is an added token


@pytest.mark.parametrize('family,size', list(RELEASED))
def test_released_sizes_have_the_published_parameter_count(family, size):
    preset = get_preset(family, size)
    with torch.device('meta'):
        model = FAMILY_CLASSES[family].model(build_config(preset))
    released = RELEASED[(family, size)]
    assert count_parameters(model) == released['parameters']
    assert expected_parameters(family, released['text'], released['vision']) == released['parameters']


@pytest.mark.parametrize('family', [QWEN2_VL, QWEN2_5_VL])
def test_small_presets_build_with_the_expected_parameter_count(family):
    preset = get_preset(family, 'small')
    model = FAMILY_CLASSES[family].model(build_config(preset))
    expected = expected_parameters(family, dict(preset.text), dict(preset.vision))
    assert count_parameters(model) == expected
    assert 100_000_000 <= expected <= 150_000_000


@pytest.fixture(scope='module')
def qwen2_5_vl_tiny_dir(tmp_path_factory) -> str:
    return build_checkpoint(str(tmp_path_factory.mktemp('tiny-qwen2-5-vl')), QWEN2_5_VL, 'tiny')


def test_built_qwen2_5_vl_checkpoint_has_the_preset_shapes_and_parameter_count(qwen2_5_vl_tiny_dir):
    preset = get_preset(QWEN2_5_VL, 'tiny')
    output = qwen2_5_vl_tiny_dir
    with open(os.path.join(output, 'config.json'), encoding='utf-8') as f:
        saved = json.load(f)
    assert saved['model_type'] == QWEN2_5_VL
    assert {name: saved['text_config'][name] for name in preset.text} == dict(preset.text)
    model = FAMILY_CLASSES[QWEN2_5_VL].model.from_pretrained(output)
    expected = expected_parameters(QWEN2_5_VL, dict(preset.text), dict(preset.vision))
    assert count_parameters(model) == expected
    with open(os.path.join(output, 'build_info.json'), encoding='utf-8') as f:
        assert json.load(f)['parameters'] == expected


def test_the_test_model_is_tiny_and_its_count_matches_the_formula(tiny_model_dir):
    from transformers import Qwen2VLForConditionalGeneration

    preset = get_preset(QWEN2_VL, 'tiny')
    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    assert count_parameters(model) == expected_parameters(QWEN2_VL, dict(preset.text), dict(preset.vision))
    assert model.config.text_config.hidden_size == 64 and model.config.vision_config.depth == 1


def test_qwen2_5_vl_preset_loads_and_trains_through_ms_swift(qwen2_5_vl_tiny_dir, sample_jsonl):
    """ms-swift's own loader (model type qwen2_5_vl) and stock template encode a sample episode; the loss is finite and
    the image tokens number grid.prod() / merge_size**2 per image."""
    from swift.model import get_model_processor
    from swift.template import get_template
    from transformers import Qwen2_5_VLForConditionalGeneration

    model, processor = get_model_processor(qwen2_5_vl_tiny_dir, model_type='qwen2_5_vl', device_map='cpu')
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    template = get_template(processor, template_type='qwen2_5_vl')
    template.set_mode('train')
    with open(sample_jsonl, encoding='utf-8') as f:
        row = json.loads(f.readline())
    messages = [{'role': t['from'], 'content': t['value']} for t in row['conversations']]
    encoded = template.encode({'messages': messages, 'images': row['images']})
    image_tokens = sum(1 for token in encoded['input_ids'] if token == 151655)
    assert image_tokens == int(encoded['image_grid_thw'].prod(dim=-1).sum()) // 4 > 0
    batch = template.data_collator([encoded])
    loss = model(**{key: batch[key] for key in ('input_ids', 'labels', 'pixel_values', 'image_grid_thw')}).loss
    assert torch.isfinite(loss) and loss.item() > 0
