"""The federated loss hooks on a minimal trainer: non-finite losses and FedProx's once-per-step share."""

import pytest
import torch

from swift_ext.federated.client_trainer import NonFiniteLoss, ScaffoldCorrection, make_client_trainer_cls


class FakeState:
    global_step = 4


class FakeTrainer:
    """The slice of transformers' Trainer the hooks use; ``compute_loss`` returns a preset loss."""

    def __init__(self, model, loss, accepts_loss_kwargs=True, accumulation=2):
        self.model = model
        self.loss = loss
        self.state = FakeState()
        self.model_accepts_loss_kwargs = accepts_loss_kwargs
        self.compute_loss_func = None
        self.current_gradient_accumulation_steps = accumulation
        self.callbacks = []

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = self.loss(model)
        return (loss, 'outputs') if return_outputs else loss


Trainer = make_client_trainer_cls(FakeTrainer)


def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(2, 2)


def test_stop_raises_on_a_non_finite_loss():
    model = linear()
    trainer = Trainer(model, lambda m: m.weight.sum() * float('nan'), nonfinite_loss='stop')
    with pytest.raises(NonFiniteLoss, match='local step 5'):
        trainer.compute_loss(model, {})


def test_skip_gives_a_zero_gradient_and_counts():
    model = linear()
    trainer = Trainer(model, lambda m: m.weight.sum() * float('inf'), nonfinite_loss='skip')
    loss = trainer.compute_loss(model, {})
    loss.backward()
    assert loss.item() == 0.0 and trainer.skipped_steps == 1
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters())


@pytest.mark.parametrize('accepts, items, expected_share', [(True, 10, 0.5), (False, 10, 1.0), (True, None, 1.0)])
def test_fedprox_term_counts_once_per_optimizer_step(accepts, items, expected_share):
    # With 2 accumulation steps, transformers divides unscaled micro-batch losses by 2 itself; when the loss is already
    # scaled for accumulation (accepts loss kwargs and num_items_in_batch given) the hook must divide the term.
    model = linear()
    anchor = {name: p.detach() - 1.0 for name, p in model.named_parameters()}  # ||w - anchor||^2 = numel
    numel = sum(p.numel() for p in model.parameters())
    trainer = Trainer(model, lambda m: torch.tensor(0.0), accepts_loss_kwargs=accepts, proximal_mu=0.2, anchor=anchor)
    loss, outputs = trainer.compute_loss(model, {}, return_outputs=True, num_items_in_batch=items)
    assert outputs == 'outputs'
    assert loss.item() == pytest.approx(0.1 * numel * expected_share)


def test_no_term_in_evaluation():
    model = linear().eval()
    anchor = {name: p.detach() - 1.0 for name, p in model.named_parameters()}
    trainer = Trainer(model, lambda m: torch.tensor(0.5), proximal_mu=0.2, anchor=anchor)
    assert trainer.compute_loss(model, {}).item() == 0.5


def test_scaffold_correction_adds_c_minus_ci_and_sums_lrs():
    model = linear()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    correction = {name: torch.full_like(p, 0.25) for name, p in model.named_parameters()}
    callback = ScaffoldCorrection(correction)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        callback.on_pre_optimizer_step(None, None, None, model=model, optimizer=optimizer)
    assert all(torch.allclose(p.grad, torch.full_like(p, 1.75)) for p in model.parameters())
    assert callback.lr_sum == pytest.approx(0.3)
    assert Trainer(model, lambda m: 0, extra_callbacks=[callback]).callbacks == [callback]
