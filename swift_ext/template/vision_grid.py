"""Image resize limits, ``image_grid_thw`` inference and the image-token count check for Qwen2-VL.

qwen_vl_utils <= 0.0.11 exported IMAGE_FACTOR / MIN_PIXELS / MAX_PIXELS; 0.0.14 replaced them with token counts
(IMAGE_MIN_TOKEN_NUM / IMAGE_MAX_TOKEN_NUM, factor = patch size x SPATIAL_MERGE_SIZE). :func:`resolve_pixel_limits`
gives the same three numbers on either version. The factor comes from the image processor (patch_size x
merge_size); the pixel bounds are the ones ``qwen_vl_utils.fetch_image`` resizes with (ms-swift calls the image
processor with ``do_resize=False``, so the processor's own ``size`` never applies): the ``MIN_PIXELS`` /
``MAX_PIXELS`` environment variables first (as ms-swift reads them), then the module's constants, then Qwen2-VL's
defaults 4*28*28 and 16384*28*28.
"""

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

DEFAULT_PATCH_SIZE = 14
DEFAULT_MERGE_SIZE = 2
DEFAULT_IMAGE_FACTOR = DEFAULT_PATCH_SIZE * DEFAULT_MERGE_SIZE  # 28
DEFAULT_MIN_TOKENS = 4
DEFAULT_MAX_TOKENS = 16384


@dataclass(frozen=True)
class PixelLimits:
    """How qwen_vl_utils resizes an image: sides are multiples of ``image_factor``, area within [min, max]."""

    image_factor: int
    min_pixels: int
    max_pixels: int


def _pixels(
    name: str, vision_process: Optional[ModuleType], token_constant: str, default_tokens: int, factor: int
) -> Tuple[int, str]:
    """One bound and its source: environment variable, else the module's pixel constant, else its token constant,
    else the default."""
    from_env = os.environ.get(name)
    if from_env:
        try:
            return int(from_env), f'env var {name}'
        except ValueError:
            raise ValueError(f'Environment variable {name}={from_env!r} must be an integer number of pixels.') from None
    value = getattr(vision_process, name, None)
    if value is not None:
        return int(value), f'library (qwen_vl_utils {name})'
    tokens = getattr(vision_process, token_constant, None)
    if tokens is not None:
        return int(tokens) * factor * factor, f'library (qwen_vl_utils {token_constant} {tokens} x {factor}^2)'
    return default_tokens * factor * factor, f'default ({default_tokens} x {factor}^2)'


def resolve_pixel_limits_with_sources(
    image_processor: Any, vision_process: Optional[ModuleType] = None
) -> Tuple[PixelLimits, Dict[str, str]]:
    """:func:`resolve_pixel_limits` and where each number comes from: {'image_factor': 'processor (patch_size 14 x
    merge_size 2)' or 'default (...)', 'min_pixels' / 'max_pixels': 'env var MIN_PIXELS', 'library (qwen_vl_utils
    MIN_PIXELS)', 'library (qwen_vl_utils IMAGE_MIN_TOKEN_NUM 4 x 28^2)' or 'default (4 x 28^2)'}."""
    if vision_process is None:
        from qwen_vl_utils import vision_process
    patch_size = getattr(image_processor, 'patch_size', None)
    merge_size = getattr(image_processor, 'merge_size', None)
    origin = 'processor' if patch_size and merge_size else 'default'
    patch_size, merge_size = int(patch_size or DEFAULT_PATCH_SIZE), int(merge_size or DEFAULT_MERGE_SIZE)
    factor = patch_size * merge_size
    min_pixels, min_source = _pixels('MIN_PIXELS', vision_process, 'IMAGE_MIN_TOKEN_NUM', DEFAULT_MIN_TOKENS, factor)
    max_pixels, max_source = _pixels('MAX_PIXELS', vision_process, 'IMAGE_MAX_TOKEN_NUM', DEFAULT_MAX_TOKENS, factor)
    if min_pixels > max_pixels:
        raise ValueError(f'MIN_PIXELS ({min_pixels}) is above MAX_PIXELS ({max_pixels}); lower it.')
    sources = {
        'image_factor': f'{origin} (patch_size {patch_size} x merge_size {merge_size})',
        'min_pixels': min_source,
        'max_pixels': max_source,
    }
    return PixelLimits(image_factor=factor, min_pixels=min_pixels, max_pixels=max_pixels), sources


def resolve_pixel_limits(image_processor: Any, vision_process: Optional[ModuleType] = None) -> PixelLimits:
    """The resize limits for ``image_processor``, whichever qwen_vl_utils version ``vision_process`` is.

    ``vision_process`` defaults to ``qwen_vl_utils.vision_process``; pass a module (or None-like stub) to test.
    """
    return resolve_pixel_limits_with_sources(image_processor, vision_process)[0]


def image_grid_thw_for(image_sizes: Sequence[Tuple[int, int]], limits: PixelLimits, patch_size: int) -> torch.Tensor:
    """``image_grid_thw`` (one row [1, h/patch, w/patch] per image) for images of (width, height) ``image_sizes``.

    Sizes are PIL's (width, height); smart_resize takes (height, width) and returns (height, width).
    """
    rows: List[List[int]] = []
    for width, height in image_sizes:
        resized_height, resized_width = smart_resize(
            height, width, factor=limits.image_factor, min_pixels=limits.min_pixels, max_pixels=limits.max_pixels
        )
        rows.append([1, resized_height // patch_size, resized_width // patch_size])
    return torch.tensor(rows, dtype=torch.long)


def ensure_image_grid_thw(
    encoded: Mapping[str, Any], image_sizes: Sequence[Tuple[int, int]], limits: PixelLimits, patch_size: int
) -> torch.Tensor:
    """``encoded['image_grid_thw']``, or the grid inferred from ``image_sizes`` when the sample lacks it."""
    grid = encoded.get('image_grid_thw')
    if grid is not None:
        return torch.as_tensor(grid)
    return image_grid_thw_for(image_sizes, limits, patch_size)


def check_image_token_count(
    input_ids: Sequence[int], image_token_id: int, image_grid_thw: torch.Tensor, merge_size: int
) -> None:
    """ValueError unless the number of image tokens in ``input_ids`` equals sum(grid.prod()) / merge_size**2."""
    found = sum(1 for token in input_ids if token == image_token_id)
    expected = int((torch.as_tensor(image_grid_thw).prod(dim=-1) // merge_size**2).sum())
    if found != expected:
        raise ValueError(
            f'Image token count mismatch: the sequence has {found} image tokens (id {image_token_id}) but '
            f'image_grid_thw {torch.as_tensor(image_grid_thw).tolist()} needs {expected} (grid.prod() / '
            f'merge_size**2 with merge_size {merge_size}). Remove literal <|image_pad|> text from the data, give one '
            '<image> tag per image, and keep --max_length above the sample length (truncation cuts image tokens).'
        )
