"""Local optimizer steps of one client turn and their learning rates, as the client's fresh trainer computes them.

FedMABench semantics (``--max_steps -1``): a client with n_k rows trains ``num_train_epochs`` passes over
ceil(n_k / round_per_epoch) rows per round. transformers' ``Trainer.set_initial_training_values`` turns that into
steps for one process: batches = ceil(rows / per_device_train_batch_size), updates per epoch =
max(ceil(batches / gradient_accumulation_steps), 1), steps = ceil(num_train_epochs x updates per epoch). With
``--max_steps N > 0`` every turn is N steps over all the client's rows.

The learning rates come from transformers' own ``get_scheduler``, called as ``Trainer.create_scheduler`` calls it
(warm-up steps from ``TrainingArguments.get_warmup_steps``), on a throwaway optimizer: with a linear warm-up the first
step's rate is 0, so a one-step turn trains nothing.
"""

import math
from typing import Any, List

import torch
from transformers import get_scheduler


def round_rows(client_rows: int, args: Any) -> int:
    """Rows a client trains on per round: all of them with --max_steps > 0, else ceil(n_k / round_per_epoch)."""
    return client_rows if args.max_steps > 0 else math.ceil(client_rows / args.round_per_epoch)


def local_steps(rows: int, training_args: Any) -> int:
    """Optimizer steps of one turn over ``rows`` rows under ms-swift's training arguments (``args.training_args``,
    where ms-swift's defaults such as gradient_accumulation_steps are resolved); 0 for a client without rows."""
    if rows == 0:
        return 0
    if training_args.max_steps > 0:
        return training_args.max_steps
    batches = math.ceil(rows / training_args.per_device_train_batch_size)
    updates_per_epoch = max(math.ceil(batches / training_args.gradient_accumulation_steps), 1)
    return math.ceil(training_args.num_train_epochs * updates_per_epoch)


def learning_rates(training_args: Any, total_steps: int) -> List[float]:
    """The learning rate of each of the ``total_steps`` optimizer steps of one turn (step i uses the rate the
    scheduler holds after i scheduler steps)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=training_args.learning_rate)
    scheduler = get_scheduler(
        training_args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=training_args.get_warmup_steps(total_steps),
        num_training_steps=total_steps,
        scheduler_specific_kwargs=training_args.lr_scheduler_kwargs,
    )
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    return rates
