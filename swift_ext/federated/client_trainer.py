"""The trainer a client uses: ms-swift's trainer class plus what federated algorithms ask of local training.

- FedProx: ``mu/2 ||w - x_t||^2`` over the trainable parameters is added to every training loss
  (``swift_ext.strategies.fedprox``).
- Non-finite loss: detected on the step it happens. ``stop`` raises :class:`NonFiniteLoss` (the client's turn fails
  and its update is not aggregated); ``skip`` gives that micro-batch a zero gradient and counts it (the optimiser still
  steps on the rest of the accumulated batch; with AdamW a zero gradient still moves weights by momentum and decay).
- SCAFFOLD: :class:`ScaffoldCorrection` adds ``c - c_i`` to each gradient just before the optimiser step and sums
  the learning rates it applied (``swift_ext.strategies.scaffold``).
- Step logs: with a :class:`~swift_ext.federated.step_log.ClientStepLog`, every row ms-swift logs (``logging.jsonl``)
  starts with ``round`` and ``client``, and its values go to the client's TensorBoard run.
- Data loading: ``train_loader_hook`` may put another loader in place of ms-swift's training loader (the node's
  persistent workers, ``swift_ext.federated.node_loader``).
"""

from typing import Any, Callable, Dict, Literal, Optional, Sequence, Type

import torch
from transformers import TrainerCallback

from ..strategies.fedprox import proximal_term
from .state import State
from .step_log import ClientStepLog


class NonFiniteLoss(RuntimeError):
    """A client's training loss became NaN or infinite."""


def make_client_trainer_cls(base: Type) -> Type:
    """Subclass ms-swift's trainer class ``base`` with the federated loss hooks (built once per run)."""

    class FederatedClientTrainer(base):
        def __init__(
            self,
            *args,
            proximal_mu: float = 0.0,
            anchor: Optional[State] = None,
            nonfinite_loss: Literal['stop', 'skip'] = 'stop',
            extra_callbacks: Sequence[TrainerCallback] = (),
            step_log: Optional[ClientStepLog] = None,
            train_loader_hook: Optional[Callable[[Any], Any]] = None,
            **kwargs,
        ) -> None:
            super().__init__(*args, **kwargs)
            self.step_log = step_log
            self.train_loader_hook = train_loader_hook
            for callback in extra_callbacks:  # ms-swift already passes its own `callbacks` to transformers' Trainer
                self.add_callback(callback)
            self.proximal_mu = proximal_mu
            self.nonfinite_loss = nonfinite_loss
            self.skipped_steps = 0
            self._anchor: Dict[str, torch.Tensor] = {}
            if proximal_mu > 0:
                params = dict(self.model.named_parameters())
                self._anchor = {name: t.to(params[name].device, params[name].dtype) for name, t in anchor.items()}

        def log(self, logs: Dict[str, float], *args, **kwargs) -> None:
            """Tag the row before ms-swift's callbacks write it; then mirror it to the client's TensorBoard run."""
            if self.step_log is None:
                return super().log(logs, *args, **kwargs)
            self.step_log.tag(logs)
            super().log(logs, *args, **kwargs)
            if self.is_world_process_zero():
                self.step_log.write_scalars(logs, self.state.global_step, self.state.max_steps)

        def train(self, *args, **kwargs):
            try:
                return super().train(*args, **kwargs)
            finally:
                if self.step_log is not None:
                    self.step_log.close()

        def get_train_dataloader(self, *args, **kwargs):
            """The base trainer's loader, or what ``train_loader_hook`` puts in its place (the node's persistent
            workers) for a loader from the start of the data (no arguments: ms-swift's ``skip_batches`` is 0)."""
            loader = super().get_train_dataloader(*args, **kwargs)
            if self.train_loader_hook is None or args or any(kwargs.values()):
                return loader
            return self.train_loader_hook(loader)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
            if not self.model.training:
                return result
            loss, outputs = (result[0], result[1:]) if return_outputs else (result, ())
            if not bool(torch.isfinite(loss.detach()).all()):
                loss = self._handle_nonfinite(loss)
            if self.proximal_mu > 0:
                loss = loss + self._proximal_share(num_items_in_batch)
            return (loss, *outputs) if return_outputs else loss

        def _handle_nonfinite(self, loss: torch.Tensor) -> torch.Tensor:
            if self.nonfinite_loss == 'stop':
                raise NonFiniteLoss(
                    f'non-finite training loss {loss.detach().float().item()} at local step '
                    f'{self.state.global_step + 1}'
                )
            self.skipped_steps += 1
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            return sum(p.sum() for p in trainable) * 0.0

        def _proximal_share(self, num_items_in_batch: Any) -> torch.Tensor:
            term = proximal_term(self.model.named_parameters(), self._anchor, self.proximal_mu)
            # transformers divides each micro-batch loss by the accumulation steps unless it is already scaled for
            # them (the same test as Trainer.training_step); either way the term counts once per optimiser step.
            scaled = getattr(self, 'loss_is_scaled_for_ga', None)
            if scaled is None:
                scaled = (
                    self.model_accepts_loss_kwargs and num_items_in_batch is not None
                ) or self.compute_loss_func is not None
            return term / self.current_gradient_accumulation_steps if scaled else term

    return FederatedClientTrainer


class ScaffoldCorrection(TrainerCallback):
    """Adds ``correction = c - c_i`` to every trainable gradient before each optimiser step; sums the applied LRs."""

    def __init__(self, correction: State) -> None:
        self.correction = correction
        self.lr_sum = 0.0
        self._on_device: Dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        for name, param in model.named_parameters():
            if param.requires_grad and param.grad is not None:
                if name not in self._on_device:
                    self._on_device[name] = self.correction[name].to(param.grad.device, param.grad.dtype)
                param.grad.add_(self._on_device[name])
        self.lr_sum += float(optimizer.param_groups[0]['lr'])
