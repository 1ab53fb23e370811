"""Qwen2-VL template compatibility layer: checked Qwen2-VL / Qwen2.5-VL templates for ms-swift.

:func:`register_checked_templates` installs them (federated runs call it at start-up); plain ``swift sft`` /
``swift infer`` install them with ``--external_plugins <path of swift_ext/template/plugin.py>``.
"""

from .model_access import find_get_rope_index, find_input_embeddings, find_visual, unwrap_model
from .qwen2_vl import (
    CheckedQwen2_5VLTemplate,
    CheckedQwen2VLTemplate,
    register_checked_templates,
)
from .vision_grid import (
    PixelLimits,
    check_image_token_count,
    ensure_image_grid_thw,
    image_grid_thw_for,
    resolve_pixel_limits,
    resolve_pixel_limits_with_sources,
)
from .vision_tokens import VisionTokenIds, resolve_vision_token_ids

__all__ = [
    'CheckedQwen2VLTemplate',
    'CheckedQwen2_5VLTemplate',
    'PixelLimits',
    'VisionTokenIds',
    'check_image_token_count',
    'ensure_image_grid_thw',
    'find_get_rope_index',
    'find_input_embeddings',
    'find_visual',
    'image_grid_thw_for',
    'register_checked_templates',
    'resolve_pixel_limits',
    'resolve_pixel_limits_with_sources',
    'resolve_vision_token_ids',
    'unwrap_model',
]
