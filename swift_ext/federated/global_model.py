"""The server's copy of the model: ``global_lora_{round}`` as a PEFT adapter directory that ms-swift and peft both
load, and the global model's evaluation (validation loss, optionally generated actions)."""

import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from datasets import Dataset as HfDataset
from peft import PeftModel
from torch import nn
from torch.utils.data import Dataset

from .client import client_training_args
from .state import State, load_trainable_state


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


@dataclass
class GlobalEvaluation:
    """What the global model is evaluated on (``--fed_eval_every``): the validation rows, how to encode them, and the
    generation scoring of ``--fed_eval_generation_rows``."""

    val: HfDataset
    encode: Callable[[HfDataset], Dataset]
    generation_rows: int = 0
    prompt_format: str = 'fedmabench'
    max_new_tokens: int = 64


@dataclass
class SwiftGlobalModel:
    """:class:`~swift_ext.federated.round_loop.GlobalModel` on an ms-swift model held by this process.

    In-process the model is the one the clients train on, so every call first loads the state it is given.
    """

    model: nn.Module
    processor: Any
    template: Any
    output_dir: str
    trainer_factory: Callable[..., Any]
    training_args: Any
    evaluation: Optional[GlobalEvaluation] = None

    def save(self, round_number: int, state: State) -> str:
        load_trainable_state(self.model, state)
        return save_global_model(self.model, self.processor, self.output_dir, round_number)

    def evaluate(self, state: State) -> Tuple[float, Optional[Dict[str, Any]]]:
        """(validation loss, action metrics or None).

        The loss comes from transformers' own evaluation loop, called directly (``Trainer.evaluate`` would also fire
        ms-swift's log callbacks, which assume a training run around them). With generation rows the model also
        generates on the first validation rows, scored by ``swift_ext.evaluation``.
        """
        from ..evaluation import evaluate_generation

        if self.evaluation is None:
            raise ValueError('--fed_eval_every needs a validation split: --split_dataset_ratio > 0 or --val_dataset.')
        evaluation = self.evaluation
        load_trainable_state(self.model, state)
        val = evaluation.encode(evaluation.val)
        eval_args = client_training_args(self.training_args, seed_offset=0, max_steps=-1, num_train_epochs=1)
        trainer = self.trainer_factory(model=self.model, args=eval_args, train_dataset=val, eval_dataset=val)
        output = trainer.evaluation_loop(
            trainer.get_eval_dataloader(val),
            description='federated evaluation',
            prediction_loss_only=True,
            metric_key_prefix='eval',
        )
        actions = None
        if evaluation.generation_rows:
            rows = evaluation.val.select(range(min(evaluation.generation_rows, len(evaluation.val)))).to_list()
            actions = evaluate_generation(
                self.model,
                self.template,
                rows,
                prompt_format=evaluation.prompt_format,
                max_new_tokens=evaluation.max_new_tokens,
            )['overall']
        return float(output.metrics['eval_loss']), actions
