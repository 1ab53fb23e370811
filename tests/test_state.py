"""Trainable-state round trip, for LoRA (peft) and full fine-tuning alike."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from swift_ext.federated.state import get_trainable_state, load_trainable_state, state_nbytes


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_lora_state_is_the_adapter_and_round_trips():
    model = get_peft_model(tiny_net(), LoraConfig(r=2, target_modules=['0', '2']))
    state = get_trainable_state(model)
    assert state and all('lora_' in name for name in state)
    assert state_nbytes(state) == sum(t.numel() for t in state.values()) * 4
    changed = {name: tensor + 1 for name, tensor in state.items()}
    load_trainable_state(model, changed)
    reread = get_trainable_state(model)
    assert all(torch.equal(reread[name], changed[name]) for name in state)
    changed[next(iter(changed))] += 1  # the returned state is a copy: editing it does not touch the model
    assert not torch.equal(get_trainable_state(model)[next(iter(changed))], changed[next(iter(changed))])


def test_full_fine_tuning_state_is_every_weight():
    model = tiny_net()
    state = get_trainable_state(model)
    assert set(state) == {'0.weight', '0.bias', '2.weight', '2.bias'}
    x = torch.randn(3, 4)
    before = model(x)
    load_trainable_state(model, {name: torch.zeros_like(t) for name, t in state.items()})
    assert torch.equal(model(x), torch.zeros(3, 2))
    load_trainable_state(model, state)
    assert torch.equal(model(x), before)


def test_mismatches_are_rejected():
    model = tiny_net()
    state = get_trainable_state(model)
    with pytest.raises(KeyError, match='missing'):
        load_trainable_state(model, {k: v for k, v in state.items() if k != '0.bias'})
    with pytest.raises(ValueError, match='0.bias'):
        load_trainable_state(model, {**state, '0.bias': torch.zeros(3)})
