"""Writing the global model: ``global_lora_{round}`` as a PEFT adapter dir ms-swift and peft both load."""

import os
import shutil

from peft import PeftModel
from torch import nn


def global_model_dir(output_dir: str, round_number: int, model: nn.Module) -> str:
    """``global_lora_{round}`` for adapters (FedMABench's name), ``global_model_{round}`` for full fine-tuning."""
    prefix = 'global_lora' if isinstance(model, PeftModel) else 'global_model'
    return os.path.join(output_dir, f'{prefix}_{round_number}')


def save_global_model(model: nn.Module, processor, output_dir: str, round_number: int) -> str:
    """Save the model's current (global) weights; return the directory.

    The directory also gets the run's ``args.json``, which ``swift infer --adapters DIR`` reads to find the base
    model and template. The save goes to a temporary sibling first and is renamed into place, so a crash never
    leaves a half-written ``global_lora_*``.
    """
    target = global_model_dir(output_dir, round_number, model)
    staging = f'{target}.tmp'
    shutil.rmtree(staging, ignore_errors=True)
    if isinstance(model, PeftModel):
        model.save_pretrained(staging, selected_adapters=['default'])
    else:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    shutil.copy(os.path.join(output_dir, 'args.json'), os.path.join(staging, 'args.json'))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target
