"""``FedSwiftSft``: federated ``swift sft``. A run starts in :meth:`FedSwiftSft.run`, each round in
:meth:`FedSwiftSft._run_round`, each client's turn in :meth:`FedSwiftSft._client_turn`.

Set-up is ms-swift's own and happens once: model and processor, template, dataset (loaded, preprocessed and
length-checked exactly as plain ``swift sft`` does), tuner preparation. Each round then loads the global trainable
state into the shared model, trains every selected client with a fresh trainer on its rows, and lets the strategy
turn the clients' weighted mean into the next global state. After every round the run writes its log, the global
adapter when due, and an atomic checkpoint that ``--resume`` continues from.
"""

import gc
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, Dict, List, Optional, Union

import numpy as np
from datasets import Dataset as HfDataset
from safetensors.torch import save_file
from swift.dataset import LazyLLMDataset
from swift.pipelines import SwiftSft
from swift.trainers import TrainerFactory
from swift.utils import append_to_jsonl, get_logger, is_master, parse_args
from tqdm import tqdm

from data_tools.partition import assign_client_ids

from ..arguments.sft import FedSftArguments
from ..data_check import apply_strategy, check_conversations_file
from ..evaluation import evaluate_generation
from ..legacy_args import translate_legacy_argv, unknown_argument_hint, unknown_flags
from ..strategies import FedAvg, FedProx, Scaffold, ServerConfig, WeightedMean, build_strategy, non_finite_tensors
from ..strategies.aggregation import check_compatible
from ..strategies.scaffold import client_control_update
from ..template import register_checked_templates
from .checkpoint import CheckpointStore
from .client import EMPTY, EXCLUDED, FAILED, ClientResult, client_training_args, train_client
from .client_trainer import ScaffoldCorrection, make_client_trainer_cls
from .dataset import ClientMembership, RowTagger, describe_row, dropped_rows, file_line_numbers, write_checked_copy
from .run_log import FedRunLog
from .sampling import CENTRAL_CLIENT, client_seed_offset, clients_for_round, rows_for_round
from .saving import save_global_model
from .state import State, get_trainable_state, load_trainable_state, state_nbytes

logger = get_logger()


@dataclass
class FederatedData:
    """The encoded-once rows, who owns them, and each client's weight in the server average."""

    train: HfDataset
    val: Optional[HfDataset]
    membership: ClientMembership
    weights: Dict[int, float]


@dataclass
class RoundState:
    """What a round accumulates: the clients' weighted mean, their log records and SCAFFOLD's new c_i."""

    mean: WeightedMean = field(default_factory=WeightedMean)
    results: List[ClientResult] = field(default_factory=list)
    client_controls: Dict[int, State] = field(default_factory=dict)


def client_weights(train: HfDataset, membership: ClientMembership, weighting: str) -> Dict[int, float]:
    """w_k per --fed_weighting: n_k rows, distinct episode_id values, or 1."""
    if weighting == 'uniform':
        return {client: 1.0 for client in membership.positions}
    if weighting == 'samples':
        return {client: float(len(rows)) for client, rows in membership.positions.items()}
    if 'episode_id' not in train.column_names:
        raise ValueError('--fed_weighting episodes (or --fed_alg avg-epi) needs an `episode_id` column in the data.')
    episodes = np.asarray(train['episode_id'])
    return {client: float(len(set(episodes[rows].tolist()))) for client, rows in membership.positions.items()}


class FedSwiftSft(SwiftSft):
    """Federated fine-tuning with ms-swift's model, template, dataset and trainer."""

    args_class = FedSftArguments
    args: FedSftArguments

    def __init__(self, args: Optional[Union[List[str], FedSftArguments]] = None) -> None:
        register_checked_templates()  # before ms-swift resolves --template while parsing the arguments
        super().__init__(args)

    def _parse_args(self, args: Optional[Union[List[str], FedSftArguments]] = None) -> FedSftArguments:
        """Accept ms-swift 2.x names (translated and logged); reject unknown names with the closest known ones."""
        if isinstance(args, FedSftArguments):
            return args
        argv = translate_legacy_argv(sys.argv[1:] if args is None else args)
        known = [f'--{field.name}' for field in fields(FedSftArguments)]
        unknown = unknown_flags(argv, known)
        if unknown:  # checked before parsing: building the arguments already loads the model config
            raise ValueError(unknown_argument_hint(unknown, known))
        parsed, remaining = parse_args(FedSftArguments, argv)
        if remaining:
            raise ValueError(unknown_argument_hint(remaining, known))
        return parsed

    # ----------------------------------------------------------------------------------------------- set-up

    def _prepare_federated_data(self) -> FederatedData:
        """Load, preprocess and encode-check the rows once; read client membership from the surviving rows."""
        args = self.args
        tagger = RowTagger(args.client_num, args.partition, args.data_seed, assign_client_ids)
        self._check_dataset_files(tagger)
        with tagger.patched():
            train, val = self._get_dataset()
        train, val = self._encode_dataset(train, val)
        if train is None:
            raise ValueError(f'No training row survived preprocessing of {args.dataset}.')
        if args.dataset_check_strategy != 'none':
            self._report_dropped_rows(tagger, [train, val])
        membership = ClientMembership.from_dataset(train, args.client_num)
        sizes = {client: membership.num_rows(client) for client in membership.positions}
        logger.info(
            f'[swift_ext] rows per client: {sizes} (clients from: '
            f'{", ".join(sorted({f.client_source for f in tagger.files}))})'
        )
        if args.fed_eval_every and val is None:
            raise ValueError('--fed_eval_every needs a validation split: --split_dataset_ratio > 0 or --val_dataset.')
        return FederatedData(train, val, membership, client_weights(train, membership, args.weighting))

    def _check_dataset_files(self, tagger: RowTagger) -> None:
        """--dataset_check_strategy on each local .jsonl in --dataset, before ms-swift reads it.

        Bad rows are left out by training on a copy of the good rows (``<output_dir>/checked_<file>``): ms-swift
        cannot load a file with an invalid JSON line at all. The copy keeps every row's client: rows without a
        client column get the client the partition gives them in the whole file, and the tagger maps the copy's rows
        back to the user's file and lines.
        """
        args = self.args
        if args.dataset_check_strategy == 'none':
            return
        datasets = []
        for spec in args.dataset:
            path, sep, sample = spec.partition('#')
            if path.endswith('.jsonl') and os.path.isfile(path):
                report = check_conversations_file(path, template=self.template, max_length=self.template.max_length)
                logger.info(f'[swift_ext] dataset check: {report.summary()}')
                name = os.path.basename(path)
                apply_strategy(
                    report, args.dataset_check_strategy, os.path.join(args.output_dir, f'data_check_{name}.json')
                )
                if report.bad:
                    path = write_checked_copy(report, os.path.join(args.output_dir, f'checked_{name}'), tagger)
            datasets.append(path + sep + sample)
        args.dataset = datasets

    @staticmethod
    def _report_dropped_rows(tagger: RowTagger, kept: List[Optional[HfDataset]]) -> None:
        dropped = dropped_rows(tagger.files, kept)
        if not dropped:
            return
        lines = {path: file_line_numbers(path) for path in {path for path, _ in dropped}}
        shown = '\n'.join(f'  {describe_row(path, row, lines[path])}' for path, row in dropped[:20])
        more = f'\n  ... and {len(dropped) - 20} more' if len(dropped) > 20 else ''
        logger.warning(
            f'[swift_ext] {len(dropped)} rows are not trained on (dropped by ms-swift preprocessing or '
            f'encoding, or not drawn by PATH#N sampling); other rows keep their clients:\n{shown}{more}'
        )

    def _encoded(self, dataset: HfDataset, positions: Optional[np.ndarray] = None) -> LazyLLMDataset:
        args = self.args
        rows = dataset if positions is None else dataset.select(positions)
        return LazyLLMDataset(rows, self.template.encode, strict=args.strict, random_state=args.data_seed)

    def _resume(
        self, store: CheckpointStore, strategy: FedAvg, global_state: State, run_log: Optional[FedRunLog]
    ) -> tuple:
        """(global state, rounds done) from the last complete checkpoint; (the fresh state, 0) without one."""
        args = self.args
        checkpoint = store.load_latest() if args.resume else None
        if checkpoint is None:
            return global_state, 0
        identity = {'fed_alg': args.fed_alg, 'client_num': args.client_num, 'seed': args.seed}
        recorded = {key: checkpoint.meta.get(key) for key in identity}
        if recorded != identity:
            raise ValueError(
                f'--resume: the checkpoint {checkpoint.path} was written with {recorded}, this run has {identity}.'
            )
        check_compatible(global_state, checkpoint.global_state, f'checkpoint {checkpoint.path}')
        strategy.load_state_dict(checkpoint.strategy_state)
        if run_log is not None:
            run_log.truncate_after(checkpoint.round_number)
        logger.info(f'[swift_ext] resuming after round {checkpoint.round_number} from {checkpoint.path}')
        return checkpoint.global_state, checkpoint.round_number

    def run(self) -> Dict[str, Any]:
        args = self.args
        data = self._prepare_federated_data()
        args.save_args()
        full_dataset = self._encoded(data.train)
        self._show_dataset(full_dataset, None)
        self.model = self.prepare_model(args, self.model, template=self.template, train_dataset=full_dataset)
        self.trainer_factory = partial(
            make_client_trainer_cls(TrainerFactory.get_trainer_cls(args)),
            template=self.template,
            **self._get_trainer_kwargs(),
        )
        self.strategy = build_strategy(
            args.fed_alg,
            ServerConfig(
                client_num=args.client_num,
                server_lr=args.server_lr,
                server_momentum=args.server_momentum,
                beta1=args.fedopt_beta1,
                beta2=args.fedopt_beta2,
                tau=args.fedopt_tau,
                fedprox_mu=args.fedprox_mu,
            ),
        )
        self.store = CheckpointStore(args.output_dir)
        run_log = FedRunLog(args.output_dir, args.logging_dir) if is_master() else None
        global_state, rounds_done = self._resume(self.store, self.strategy, get_trainable_state(self.model), run_log)
        # Every trainer ends with a full gc.collect() (accelerate's free_memory). Freezing the long-lived set-up
        # objects (model, tokenizer, datasets) takes them out of those collections: ~0.35 s less per client here.
        gc.collect()
        gc.freeze()
        try:
            saved, totals = self._run_rounds(rounds_done, global_state, data, run_log)
        finally:
            gc.unfreeze()
        summary = {'fed_alg': args.fed_alg, 'rounds': args.round, 'global_models': saved, **totals}
        if run_log is not None:
            summary['loss_plot'] = run_log.close()
            append_to_jsonl(os.path.join(args.output_dir, 'logging.jsonl'), summary)
        return summary

    def _run_rounds(
        self, rounds_done: int, global_state: State, data: FederatedData, run_log: Optional[FedRunLog]
    ) -> tuple:
        """Rounds ``rounds_done+1..round``: train, log, evaluate, save when due, checkpoint. Returns (saved dirs,
        communication totals)."""
        args = self.args
        saved, totals = [], {'bytes_sent': 0, 'bytes_received': 0}
        for round_idx in tqdm(
            range(rounds_done, args.round), desc='Round', disable=not is_master(), initial=rounds_done, total=args.round
        ):
            round_number = round_idx + 1
            start = time.perf_counter()
            global_state, round_state = self._run_round(round_idx, global_state, data)
            load_trainable_state(self.model, global_state)
            evaluation = None
            if args.fed_eval_every and round_number % args.fed_eval_every == 0:
                evaluation = self._evaluate_global(data)
            if run_log is not None:
                row = run_log.log_round(round_number, round_state.results, time.perf_counter() - start)
                totals = {key: totals[key] + row[key] for key in totals}
                if evaluation is not None:
                    run_log.log_eval(round_number, *evaluation)
            if is_master() and (round_number % args.save_every == 0 or round_number == args.round):
                saved.append(save_global_model(self.model, self.processor, args.output_dir, round_number))
            if is_master():
                self.store.save(
                    round_number,
                    global_state,
                    self.strategy.state_dict(),
                    {'fed_alg': args.fed_alg, 'client_num': args.client_num, 'seed': args.seed},
                    round_state.client_controls,
                )
        return saved, totals

    # ------------------------------------------------------------------------------------------------ rounds

    def _run_round(self, round_idx: int, global_state: State, data: FederatedData):
        """Train this round's clients from ``global_state``; return the next global state and the round's record.

        If no client's update survives (all failed, excluded or empty), the global state is unchanged.
        """
        args = self.args
        clients = clients_for_round(
            args.fed_alg, round_idx, args.client_num, args.client_sample, args.seed, args.local_client
        )
        round_state = RoundState()
        for slot, client in enumerate(
            tqdm(clients, desc=f'Round {round_idx + 1} clients', leave=False, disable=not is_master())
        ):
            round_state.results.append(
                self._client_turn(
                    round_idx,
                    client_seed_offset(round_idx, slot, len(clients)),
                    client,
                    global_state,
                    data,
                    round_state,
                )
            )
        if round_state.mean.count == 0:
            logger.error(f'[swift_ext] round {round_idx + 1}: no client update survived; global state unchanged.')
            return global_state, round_state
        return self.strategy.aggregate(global_state, round_state.mean), round_state

    def _client_turn(
        self,
        round_idx: int,
        seed_offset: int,
        client: int,
        global_state: State,
        data: FederatedData,
        round_state: RoundState,
    ) -> ClientResult:
        """One client's turn: train from the global state, then add its update to the round unless it is unusable."""
        args = self.args
        membership = data.membership
        positions = membership.pooled() if client == CENTRAL_CLIENT else membership.positions[client]
        weight = 1.0 if client == CENTRAL_CLIENT else data.weights[client]
        result = ClientResult(
            client=client, samples=len(positions), weight=weight, bytes_sent=state_nbytes(global_state)
        )
        if len(positions) == 0:
            logger.warning(f'[swift_ext] round {round_idx + 1}: client {client} has no rows; skipped.')
            result.status = EMPTY
            return result
        rows = (
            positions
            if args.max_steps > 0
            else rows_for_round(positions, round_idx, client, args.round_per_epoch, args.seed)
        )
        load_trainable_state(self.model, global_state)
        trainer_kwargs, finish_scaffold = self._algorithm_hooks(client, global_state, result)
        training_args = client_training_args(
            args.training_args,
            seed_offset=seed_offset,
            max_steps=args.max_steps,
            num_train_epochs=args.num_train_epochs,
        )
        try:
            state, result = train_client(
                self.model,
                self.trainer_factory,
                training_args,
                self._encoded(data.train, rows),
                result,
                **trainer_kwargs,
            )
        except Exception as error:  # noqa: BLE001 -- any client failure is handled per --client_failure
            if args.client_failure == 'abort':
                raise
            logger.error(
                f'[swift_ext] round {round_idx + 1}: client {client} FAILED and is excluded from the '
                f'round (--client_failure skip):\n{traceback.format_exc()}'
            )
            result.status, result.detail = FAILED, [f'{type(error).__name__}: {error}']
            return result
        bad = non_finite_tensors(state)
        if bad:
            logger.error(
                f'[swift_ext] round {round_idx + 1}: client {client} returned non-finite tensors and is '
                f'excluded: {bad[:10]}'
            )
            result.status, result.detail = EXCLUDED, bad
            return result
        check_compatible(global_state, state, f'round {round_idx + 1} client {client} update')
        round_state.mean.add(state, weight=weight)
        result.bytes_received += state_nbytes(state)
        if finish_scaffold is not None:
            round_state.client_controls[client] = finish_scaffold(state, result)
        if args.save_client_updates and is_master():
            self._save_client_update(round_idx + 1, state, result)
        return result

    def _algorithm_hooks(self, client: int, global_state: State, result: ClientResult):
        """Trainer kwargs for the client side of the algorithm, and SCAFFOLD's post-training step (or None)."""
        args = self.args
        kwargs: Dict[str, Any] = {'nonfinite_loss': args.nonfinite_loss}
        if isinstance(self.strategy, FedProx):
            kwargs.update(proximal_mu=self.strategy.mu, anchor=global_state)
        if not isinstance(self.strategy, Scaffold):
            return kwargs, None
        server_control = self.strategy.server_control(global_state)
        client_control = self.store.load_client_control(client) or {
            name: t.new_zeros(t.shape) for name, t in server_control.items()
        }
        correction = ScaffoldCorrection({name: server_control[name] - client_control[name] for name in global_state})
        kwargs['extra_callbacks'] = [correction]
        result.bytes_sent += state_nbytes(server_control)

        def finish(state: State, finished: ClientResult) -> State:
            new_control = client_control_update(client_control, server_control, global_state, state, correction.lr_sum)
            delta = {name: new_control[name] - client_control[name] for name in new_control}
            self.strategy.add_control_delta(delta)
            finished.bytes_received += state_nbytes(delta)
            return new_control

        return kwargs, finish

    def _save_client_update(self, round_number: int, state: State, result: ClientResult) -> None:
        directory = os.path.join(self.args.output_dir, 'client_updates', f'round_{round_number}')
        os.makedirs(directory, exist_ok=True)
        save_file(
            {name: t.contiguous() for name, t in state.items()},
            os.path.join(directory, f'client_{result.client}.safetensors'),
        )
        with open(os.path.join(directory, f'client_{result.client}.json'), 'w', encoding='utf-8') as f:
            json.dump(result.log_row(round_number), f, indent=2)

    def _evaluate_global(self, data: FederatedData) -> tuple:
        """(validation loss, action metrics or None) of the current global model.

        The loss comes from transformers' own evaluation loop, called directly (``Trainer.evaluate`` would also fire
        ms-swift's log callbacks, which assume a training run around them). With --fed_eval_generation_rows the model
        also generates on the first validation rows, scored by ``swift_ext.evaluation``.
        """
        args = self.args
        val = self._encoded(data.val)
        eval_args = client_training_args(args.training_args, seed_offset=0, max_steps=-1, num_train_epochs=1)
        trainer = self.trainer_factory(model=self.model, args=eval_args, train_dataset=val, eval_dataset=val)
        output = trainer.evaluation_loop(
            trainer.get_eval_dataloader(val),
            description='federated evaluation',
            prediction_loss_only=True,
            metric_key_prefix='eval',
        )
        actions = None
        if args.fed_eval_generation_rows:
            rows = data.val.select(range(min(args.fed_eval_generation_rows, len(data.val)))).to_list()
            actions = evaluate_generation(
                self.model,
                self.template,
                rows,
                prompt_format=args.fed_eval_prompt_format,
                max_new_tokens=args.fed_eval_max_new_tokens,
            )['overall']
        return float(output.metrics['eval_loss']), actions


def fed_sft_main(args: Optional[Union[List[str], FedSftArguments]] = None) -> Dict[str, Any]:
    """Entry point of federated ``swift sft`` (``swift-fed sft`` and the ``swift sft`` hook both land here)."""
    return FedSwiftSft(args).main()


__all__ = ['FedSwiftSft', 'fed_sft_main']
