"""Section 2, model and template: the model loaded once (CPU, the requested dtype) as ms-swift loads it; vision token
ids from the tokenizer against ``config.json``; the image processor's patch and merge sizes against the vision
config; where the embeddings, the vision tower and ``get_rope_index`` are found; the checked template; dtype support
on the training device; one sample encoded and collated end to end (image-token count, M-RoPE positions).
"""

import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..data_check import template_inputs
from ..template import (
    check_image_token_count,
    find_get_rope_index,
    find_input_embeddings,
    find_visual,
    resolve_vision_token_ids,
    unwrap_model,
)
from ..template.qwen2_vl import CheckedQwenVLMixin
from .report import Section

# image processor attribute -> vision config attribute that must agree with it
PROCESSOR_GEOMETRY = {
    'patch_size': 'patch_size',
    'merge_size': 'spatial_merge_size',
    'temporal_patch_size': 'temporal_patch_size',
}
QWEN_VL_FIX = 'use a Qwen2-VL / Qwen2.5-VL model directory and a transformers version from README "Supported versions"'


@dataclass
class LoadedModel:
    """What the later sections reuse: the model is loaded once."""

    model: nn.Module
    processor: Any
    template: Optional[Any]

    @property
    def image_processor(self) -> Optional[Any]:
        return getattr(self.processor, 'image_processor', None)


def module_name(model: nn.Module, module: nn.Module) -> str:
    """The dotted name of ``module`` inside the unwrapped ``model`` ('' for the model itself)."""
    return next(name for name, candidate in unwrap_model(model).named_modules() if candidate is module)


def _load(section: Section, args: Any) -> Optional[Tuple[nn.Module, Any]]:
    start = time.perf_counter()
    try:
        model, processor = args.get_model_processor(device_map='cpu')
    except Exception as error:  # noqa: BLE001 -- any loading failure is this check's finding
        section.blocking(
            'model',
            f'{args.model} does not load: {type(error).__name__}: {error}',
            'give --model a local model directory (and --model_type / --torch_dtype that fit it)',
        )
        return None
    seconds = time.perf_counter() - start
    total = sum(parameter.numel() for parameter in model.parameters())
    section.ok(
        'model',
        f'{type(model).__name__} from {args.model}: {total:,} parameters, {args.torch_dtype} on CPU',
        model_class=type(model).__name__,
        parameters=total,
        dtype=str(args.torch_dtype),
        load_seconds=round(seconds, 2),
    )
    return model, processor


def _check_vision_tokens(section: Section, tokenizer: Any, config: Any) -> bool:
    try:
        ids = resolve_vision_token_ids(tokenizer, config)
    except ValueError as error:
        section.blocking(
            'vision tokens',
            str(error),
            "make config.json's vision token ids equal the tokenizer's (or load both from one model directory)",
        )
        return False
    section.ok(
        'vision tokens',
        f'<|vision_start|> {ids.vision_start}, <|vision_end|> {ids.vision_end}, <|image_pad|> {ids.image}, '
        f'<|video_pad|> {ids.video}: from the tokenizer, and every id config.json states agrees',
        **asdict(ids),
    )
    return True


def _check_processor_geometry(section: Section, image_processor: Any, config: Any) -> None:
    vision_config = getattr(config, 'vision_config', None)
    values = {name: getattr(image_processor, name, None) for name in PROCESSOR_GEOMETRY}
    disagree = [
        f'{name} {values[name]} vs vision_config.{attribute} {getattr(vision_config, attribute)}'
        for name, attribute in PROCESSOR_GEOMETRY.items()
        if getattr(vision_config, attribute, None) is not None and values[name] != getattr(vision_config, attribute)
    ]
    text = ', '.join(f'{name} {value}' for name, value in values.items())
    if disagree:
        section.blocking(
            'image processor',
            f'the image processor and the vision config disagree: {"; ".join(disagree)}',
            "use the model's own preprocessor_config.json (it ships in the model directory)",
            **values,
        )
    else:
        section.ok('image processor', f'{type(image_processor).__name__}: {text} (the vision config agrees)', **values)


def _check_model_access(section: Section, model: nn.Module) -> None:
    """Where the checked template finds the embeddings, the vision tower and get_rope_index."""
    for check, find, owner in (
        ('embeddings', find_input_embeddings, lambda found: found),
        ('vision tower', find_visual, lambda found: found),
        ('get_rope_index', find_get_rope_index, lambda found: found.__self__),  # a bound method of its module
    ):
        try:
            module = owner(find(model))
        except AttributeError as error:
            section.blocking(check, str(error), QWEN_VL_FIX)
            continue
        path = module_name(model, module) or '(the model itself)'
        section.ok(check, f'found at {path} ({type(module).__name__})', path=path, module_class=type(module).__name__)


def _build_template(section: Section, args: Any, processor: Any, model: nn.Module) -> Optional[Any]:
    """The training template, as ms-swift's SwiftSft prepares it (train mode, the model attached when it uses it)."""
    try:
        template = args.get_template(processor)
    except Exception as error:  # noqa: BLE001 -- any template failure is this check's finding
        section.blocking('template', f'{args.template}: {type(error).__name__}: {error}', QWEN_VL_FIX)
        return None
    template.set_mode('train')
    if template.use_model:
        template.model = model
    if not isinstance(template, CheckedQwenVLMixin):
        section.warning(
            'template',
            f'{args.template} ({type(template).__name__}) is not a checked Qwen2-VL template: vision tokens, '
            'image-token counts and M-RoPE positions go unchecked during training',
            'use --template qwen2_vl or qwen2_5_vl',
        )
    else:
        section.ok(
            'template',
            f'{args.template} -> {type(template).__name__}, max_length {template.max_length}',
            template_class=type(template).__name__,
            max_length=template.max_length,
        )
    return template


def _check_dtype(section: Section, dtype: torch.dtype) -> None:
    """A matmul and a softmax in ``dtype`` on the device training will use."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    fix = 'choose a --torch_dtype this device supports (float32 always works; bfloat16 needs an Ampere or newer GPU)'
    if device == 'cuda' and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        section.blocking('dtype', f'{dtype} is not supported by {torch.cuda.get_device_name()}', fix)
        return
    try:
        x = torch.randn(8, 8, device=device).to(dtype)
        float(torch.softmax(x @ x, dim=-1).float().sum())
    except Exception as error:  # noqa: BLE001 -- each backend raises its own type
        section.blocking('dtype', f'{dtype} on {device}: {type(error).__name__}: {error}', fix)
        return
    slow = device == 'cpu' and dtype in (torch.float16, torch.bfloat16)
    section.ok('dtype', f'{dtype} works on {device}' + (' (half precision on CPU is slow)' if slow else ''))


def check_sample_encoding(section: Section, template: Any, sample: Optional[Tuple[str, Dict[str, Any]]]) -> None:
    """One sample (where, row) through the template and the collator as training runs them: the image-token count,
    and M-RoPE positions from get_rope_index."""
    if sample is None:
        section.skipped('sample', 'no row with images passed the dataset check (see Data)')
        return
    where, row = sample
    try:
        encoded = template.encode(template_inputs(row))
        input_ids, grid = encoded['input_ids'], encoded['image_grid_thw']
        merge_size = template.processor.image_processor.merge_size
        check_image_token_count(input_ids, template.image_token_id, grid, merge_size)
        positions = template.data_collator([encoded]).get('position_ids')
    except Exception as error:  # noqa: BLE001 -- the template's and the model's own errors are the finding
        section.blocking(
            'sample',
            f'{where} does not encode: {type(error).__name__}: {error}',
            'fix the row (see Data), or the model/template problem above',
        )
        return
    image_tokens = sum(1 for token in input_ids if token == template.image_token_id)
    shape = list(positions.shape) if positions is not None else None
    if shape != [3, 1, len(input_ids)]:
        section.blocking(
            'sample',
            f'{where}: M-RoPE positions have shape {shape}, expected [3, 1, {len(input_ids)}]',
            QWEN_VL_FIX,
        )
        return
    section.ok(
        'sample',
        f'{where}: {len(input_ids)} tokens, {image_tokens} image tokens = image_grid_thw {grid.tolist()} '
        f'prod / {merge_size}^2; M-RoPE positions {shape}',
        tokens=len(input_ids),
        image_tokens=image_tokens,
        image_grid_thw=grid.tolist(),
        position_ids_shape=shape,
    )


def check_model_and_template(args: Any) -> Tuple[Section, Optional[LoadedModel]]:
    section = Section('Model and template')
    loaded = _load(section, args)
    if loaded is None:
        return section, None
    model, processor = loaded
    image_processor = getattr(processor, 'image_processor', None)
    tokens_ok = _check_vision_tokens(section, getattr(processor, 'tokenizer', processor), model.config)
    if image_processor is None:
        section.blocking('image processor', f'{args.model} has no image processor', QWEN_VL_FIX)
    else:
        _check_processor_geometry(section, image_processor, model.config)
    _check_model_access(section, model)
    template = None
    if tokens_ok:
        template = _build_template(section, args, processor, model)
    else:
        section.skipped('template', 'not built: the checked template refuses disagreeing vision token ids')
    _check_dtype(section, args.torch_dtype)
    return section, LoadedModel(model, processor, template)
