"""The trainable state that travels between server and clients.

A state is ``{parameter name: tensor}`` over the parameters with ``requires_grad``: the LoRA matrices (and any
``modules_to_save``) of a PEFT model, or every weight under full fine-tuning. One definition serves both, so the
server code never branches on the tuner. PEFT's own ``get_peft_model_state_dict`` would give the same tensors under
other key names; the global adapter on disk is still written by ``PeftModel.save_pretrained`` (see ``global_model``).
"""

from typing import Dict

import torch
from torch import nn

State = Dict[str, torch.Tensor]


def get_trainable_state(model: nn.Module) -> State:
    """Detached CPU float32 copies of every trainable parameter (the model keeps training on its own tensors)."""
    return {
        name: param.detach().to('cpu', torch.float32, copy=True)
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def load_trainable_state(model: nn.Module, state: State) -> None:
    """Copy ``state`` into the model's trainable parameters in place; the key sets and shapes must match exactly."""
    params = {name: param for name, param in model.named_parameters() if param.requires_grad}
    missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
    if missing or unexpected:
        raise KeyError(f'Trainable state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}.')
    with torch.no_grad():
        for name, param in params.items():
            if param.shape != state[name].shape:
                raise ValueError(f'{name}: state shape {tuple(state[name].shape)} != parameter {tuple(param.shape)}.')
            param.copy_(state[name])


def state_nbytes(state: State) -> int:
    """Bytes of the tensors as they travel (float32 here)."""
    return sum(tensor.numel() * tensor.element_size() for tensor in state.values())
