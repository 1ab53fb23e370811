"""Per-step logs say whose step it is: ms-swift's own ``logging.jsonl`` rows carry ``round`` and ``client`` (first),
and with TensorBoard the same values land in the client's run at step (round - 1) * S + s."""

import json
from types import SimpleNamespace

import pytest
import torch
from swift.trainers import TrainingArguments  # importing swift.trainers installs ms-swift's printer callback, which
from torch import nn  # writes logging.jsonl and needs ms-swift's TrainingArguments
from transformers import Trainer

from swift_ext.federated.client_trainer import make_client_trainer_cls
from swift_ext.federated.sampling import CENTRAL_CLIENT
from swift_ext.federated.step_log import ClientStepLog

STEPS, ROUND, CLIENT = 3, 2, 5


class Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2))

    def forward(self, x, y):
        return {'loss': ((x @ self.weight - y) ** 2).mean()}


def rows():
    torch.manual_seed(0)
    return [{'x': torch.randn(2), 'y': torch.randn(())} for _ in range(8)]


def train_one_turn(output_dir, step_log):
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=STEPS, logging_steps=1, per_device_train_batch_size=2, report_to=[],
        disable_tqdm=True, use_cpu=True, save_strategy='no', learning_rate=0.1, gradient_checkpointing=False,
        gradient_accumulation_steps=1, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = make_client_trainer_cls(Trainer)(model=Regression(), args=args, train_dataset=rows(), step_log=step_log)
    trainer.train()
    return [json.loads(line) for line in (output_dir / 'logging.jsonl').read_text().splitlines()]


def test_logging_jsonl_rows_start_with_round_and_client(tmp_path):
    logged = train_one_turn(tmp_path, ClientStepLog(ROUND, CLIENT))
    assert len(logged) == STEPS + 1  # one row per step, then the trainer's summary row
    assert all(
        list(row)[:2] == ['round', 'client'] and (row['round'], row['client']) == (ROUND, CLIENT) for row in logged
    )
    assert [row['global_step/max_steps'] for row in logged[:STEPS]] == [f'{s}/{STEPS}' for s in range(1, STEPS + 1)]
    assert all(row['loss'] > 0 for row in logged[:STEPS]) and 'train_loss' in logged[-1]


def test_without_a_step_log_rows_are_ms_swifts_own(tmp_path):
    logged = train_one_turn(tmp_path, None)
    assert not any('round' in row or 'client' in row for row in logged)


def test_tensorboard_gets_the_rows_on_the_clients_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / 'runs' / 'client_5'
    logged = train_one_turn(tmp_path, ClientStepLog(ROUND, CLIENT, str(run)))
    events = EventAccumulator(str(run))
    events.Reload()
    losses = events.Scalars('train/loss')
    # Round 2 of a client with S = 3 steps per round covers steps (3, 6]: local steps 1..3 -> 4, 5, 6.
    assert [event.step for event in losses] == [4, 5, 6]
    assert [event.value for event in losses] == pytest.approx([row['loss'] for row in logged[:STEPS]], rel=1e-6)
    assert [e.step for e in events.Scalars('train/learning_rate')] == [4, 5, 6]
    assert not {'train/round', 'train/client'} & set(events.Tags()['scalars'])


@pytest.mark.parametrize(
    'report_to, client, expected',
    [(['tensorboard'], 3, 'runs/client_3'), (['tensorboard'], CENTRAL_CLIENT, 'runs/central'), ([], 3, None)],
)
def test_a_turn_reports_to_tensorboard_when_the_run_does(report_to, client, expected):
    step_log = ClientStepLog.for_turn(SimpleNamespace(report_to=report_to, logging_dir='runs'), 4, client)
    assert (step_log.round_number, step_log.client, step_log.tensorboard_dir) == (4, client, expected)
