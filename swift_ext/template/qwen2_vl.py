"""ms-swift's Qwen2-VL / Qwen2.5-VL templates with checked, version-robust model access.

:func:`register_checked_templates` puts them in ms-swift's registry under the stock names ``qwen2_vl`` and
``qwen2_5_vl``, so ``--template`` and a run's ``args.json`` keep naming stock templates (a run trained with them is
read back by plain ``swift infer``). Compared with ms-swift's own templates they:

- take the vision token ids from the tokenizer and check them against the model config (no hard-coded 151655);
- reach the text embeddings, the vision tower and ``get_rope_index`` through any wrapper and transformers layout,
  failing with a message instead of an AttributeError deep in training, and never falling back to 1-D positions;
- infer ``image_grid_thw`` from the image sizes when an encoded sample lacks it, and check that the number of image
  tokens equals grid.prod() / merge_size**2 for every sample, naming both numbers;
- leave ``position_ids`` out of generation inputs on transformers 4.x, whose ``generate()`` would reuse the pre-fill
  positions at every decoding step (a shape error after the first token); the model then computes its M-RoPE
  positions itself in the pre-fill and offsets them with ``rope_deltas``.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Optional

import transformers
from swift.template import TEMPLATE_MAPPING, register_template
from swift.template.template_inputs import StdTemplateInputs
from swift.template.templates.qwen import Qwen2_5VLTemplate, Qwen2VLTemplate
from swift.utils import get_logger
from torch import nn

from .model_access import find_get_rope_index, find_input_embeddings, find_visual
from .vision_grid import PixelLimits, check_image_token_count, ensure_image_grid_thw, resolve_pixel_limits
from .vision_tokens import VisionTokenIds, resolve_vision_token_ids

logger = get_logger()
TRANSFORMERS_4 = int(transformers.__version__.split('.')[0]) < 5


class CheckedQwenVLMixin:
    """The checked overrides shared by the Qwen2-VL and Qwen2.5-VL templates (mixed in before ms-swift's class)."""

    vision_token_ids: VisionTokenIds
    pixel_limits: PixelLimits

    def init_processor(self, processor: Any) -> None:
        already = processor is None or self._processor_inited
        super().init_processor(processor)
        if already:
            return
        self.vision_token_ids = resolve_vision_token_ids(self.tokenizer, self.config)
        self.image_token_id = self.vision_token_ids.image
        self.video_token_id = self.vision_token_ids.video
        self.pixel_limits = resolve_pixel_limits(processor.image_processor)
        logger.info(f'[swift_ext] checked {type(self).__name__}: {self.vision_token_ids}, {self.pixel_limits}')

    def _encode(self, inputs: StdTemplateInputs) -> Dict[str, Any]:
        encoded = super()._encode(inputs)
        if inputs.images:
            image_processor = self.processor.image_processor
            sizes = [image.size for image in inputs.images]
            grid = ensure_image_grid_thw(encoded, sizes, self.pixel_limits, image_processor.patch_size)
            encoded['image_grid_thw'] = grid
            check_image_token_count(encoded['input_ids'], self.image_token_id, grid, image_processor.merge_size)
        return encoded

    def _post_encode(self, model: nn.Module, inputs: Dict[str, Any]) -> Dict[str, Any]:
        if not self.is_training:
            return inputs
        text_embeds = find_input_embeddings(model)(inputs['input_ids'])
        visual = find_visual(model)
        inputs_embeds = self._get_inputs_embeds_hf(text_embeds, inputs, visual, self.processor, model.config)
        return {'inputs_embeds': inputs_embeds}

    def _get_get_rope_index(self) -> Callable[..., Any]:
        return find_get_rope_index(self._get_model())

    def _data_collator(self, batch: List[Dict[str, Any]], *, padding_to: Optional[int] = None) -> Dict[str, Any]:
        collated = super()._data_collator(batch, padding_to=padding_to)
        if TRANSFORMERS_4 and not self.is_training:
            collated.pop('position_ids', None)
        return collated


class CheckedQwen2VLTemplate(CheckedQwenVLMixin, Qwen2VLTemplate):
    """ms-swift's ``qwen2_vl`` template with the checks above."""


class CheckedQwen2_5VLTemplate(CheckedQwenVLMixin, Qwen2_5VLTemplate):
    """ms-swift's ``qwen2_5_vl`` template with the checks above."""


# ms-swift template name -> the checked class that replaces its template class.
CHECKED_TEMPLATES: Dict[str, type] = {
    'qwen2_vl': CheckedQwen2VLTemplate,
    'qwen2_5_vl': CheckedQwen2_5VLTemplate,
}


def register_checked_templates() -> None:
    """Register the checked templates in ms-swift's TEMPLATE_MAPPING (idempotent; replaces qwen2_vl/qwen2_5_vl).

    Each meta is ms-swift's own (system prompt, stop words, ...) with only the template class changed.
    """
    for name, template_cls in CHECKED_TEMPLATES.items():
        register_template(dataclasses.replace(TEMPLATE_MAPPING[name], template_cls=template_cls), exist_ok=True)
