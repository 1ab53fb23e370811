"""Section 4, federated plan: clients and their rows, who trains in which round, local steps per turn (FedMABench
semantics) and the learning rates of those steps, bytes on the wire, and disk for checkpoints against free space.

Rows per client are the rows the dataset check keeps, with the client the run gives them: the ``client_id`` (or
``client_number``) column, validated as the run validates it, or the ``--partition`` of the whole file. Who trains
comes from ``federated.sampling.clients_for_round``, the run's own draw. Counts are for one training process.
"""

import json
import os
import shutil
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from datasets import Dataset as HfDataset

from data_tools.partition import assign_client_ids

from ..data_check import CheckReport
from ..federated.dataset import (
    CLIENT_COLUMN,
    LEGACY_CLIENT_COLUMN,
    FileOrigin,
    original_row_clients,
    read_client_column,
)
from ..federated.sampling import CENTRAL_CLIENT, clients_for_round
from .footprint import Footprint, measure_footprint
from .lora import TrainableScope
from .report import Section, format_bytes, plural
from .steps import learning_rates, local_steps, round_rows

LISTED_CLIENTS = 12  # clients whose row counts the table lists one by one; --json has all
STEPS_FIX = (
    'give every turn at least two steps (lower --round_per_epoch, --per_device_train_batch_size or '
    '--gradient_accumulation_steps, raise --num_train_epochs or --max_steps), or drop the warm-up (--warmup_ratio 0)'
)


def _kept_rows(report: CheckReport) -> Tuple[List[int], List[Dict[str, Any]]]:
    """(row index, parsed row) of every row the check kept."""
    bad = {row.row for row in report.bad}
    with open(report.path, encoding='utf-8') as f:
        lines = [line for line in f if line.strip()]
    kept = [index for index in range(len(lines)) if index not in bad]
    return kept, [json.loads(lines[index]) for index in kept]


def file_clients(report: CheckReport, args: Any) -> Tuple[List[int], str]:
    """The client of every row the check kept in ``report.path``, and where the clients come from. ValueError (or
    TypeError from a column of mixed types) names the rows the run would reject."""
    partition = original_row_clients(report.path, args.client_num, args.partition, args.data_seed, assign_client_ids)
    kept, rows = _kept_rows(report)
    if partition is not None:
        return [partition[index] for index in kept], f'--partition {args.partition} (--data_seed {args.data_seed})'
    column = CLIENT_COLUMN if any(CLIENT_COLUMN in row for row in rows) else LEGACY_CLIENT_COLUMN
    values = HfDataset.from_dict({column: [row.get(column) for row in rows]})
    origin = FileOrigin(report.path, kept, report.rows_read)  # errors name the file's own lines
    return read_client_column(values, origin, args.client_num), f'{column} column'


def _client_rows(section: Section, args: Any, reports: Sequence[CheckReport]) -> Optional[List[int]]:
    """n_k for every client, or None (with a blocking finding) when the client assignment fails."""
    counts: Counter = Counter()
    sources: Set[str] = set()
    for report in reports:
        try:
            clients, source = file_clients(report, args)
        except (ValueError, TypeError) as error:
            section.blocking(
                'clients',
                f'{report.path}: {error}',
                'give every row an integer client_id in [0, --client_num), or drop the column to use --partition',
            )
            return None
        counts.update(clients)
        sources.add(source)
    rows = [counts[client] for client in range(args.client_num)]
    listing = (
        ', '.join(f'{client}: {n}' for client, n in enumerate(rows))
        if len(rows) <= LISTED_CLIENTS
        else f'min {min(rows)}, max {max(rows)}, total {sum(rows)}'
    )
    section.ok(
        'clients',
        f'{args.client_num} clients from the {" and ".join(sorted(sources))}; rows per client after the dataset '
        f'check: {listing}',
        rows_per_client=rows,
        sources=sorted(sources),
    )
    return rows


def _check_empty_clients(section: Section, rows: List[int], trained: Set[int]) -> None:
    empty = sorted(client for client in trained if client != CENTRAL_CLIENT and rows[client] == 0)
    if empty:
        section.warning(
            'clients',
            f'clients {empty} have no rows: their turns are skipped whenever they are sampled',
            'lower --client_num to the clients the data has, or repartition (python -m data_tools.partition)',
            empty_clients=empty,
        )


def _turn_steps(args: Any, rows: List[int], trained: Set[int]) -> Dict[int, int]:
    """Local steps of each client that trains at least once (the central pseudo-client owns every row)."""
    client_rows = {client: sum(rows) if client == CENTRAL_CLIENT else rows[client] for client in trained}
    return {client: local_steps(round_rows(n, args), args.training_args) for client, n in sorted(client_rows.items())}


def _check_steps(section: Section, args: Any, rows: List[int], schedule: List[List[int]]) -> None:
    trained = set().union(*schedule)
    _check_empty_clients(section, rows, trained)
    steps = _turn_steps(args, rows, trained)
    total = sum(steps[client] for clients in schedule for client in clients)
    active_steps = {client: n for client, n in steps.items() if n > 0}
    training_args = args.training_args
    semantics = (
        f"--max_steps {args.max_steps} per turn over all the client's rows"
        if args.max_steps > 0
        else f'num_train_epochs {training_args.num_train_epochs:g} x ceil(ceil(n_k / round_per_epoch '
        f'{args.round_per_epoch}) / (per_device_train_batch_size {training_args.per_device_train_batch_size} x '
        f'gradient_accumulation_steps {training_args.gradient_accumulation_steps})) per turn (FedMABench semantics)'
    )
    turns = sum(len(clients) for clients in schedule)
    section.ok(
        'local steps',
        f'{args.round} rounds, {turns} client turns ({args.fed_alg}); {semantics}: '
        + (
            f'{min(active_steps.values())}-{max(active_steps.values())} steps per turn'
            if active_steps
            else 'no turn trains'
        )
        + f', {total} local steps in the run',
        steps_per_client={str(client): n for client, n in steps.items()},
        total_steps=total,
    )
    if active_steps:
        _check_learning_rates(section, args, active_steps)


def _check_learning_rates(section: Section, args: Any, steps: Dict[int, int]) -> None:
    """Flag clients whose every step has learning rate 0 (a one-step turn under a linear warm-up)."""
    rates = {n: learning_rates(args.training_args, n) for n in sorted(set(steps.values()))}
    idle = sorted(client for client, n in steps.items() if max(rates[n]) == 0)
    shortest = min(rates)
    warmup = args.training_args.get_warmup_steps(shortest)
    scheduler = getattr(args.training_args.lr_scheduler_type, 'value', args.training_args.lr_scheduler_type)
    summary = (
        f'{scheduler} schedule, learning_rate {args.learning_rate:g}; the shortest turn ({plural(shortest, "step")}, '
        f'{warmup} of them warm-up) runs at {[round(rate, 10) for rate in rates[shortest][:4]]}'
        + (' ...' if shortest > 4 else '')
    )
    details = {'idle_clients': idle, 'first_step_lr': {str(n): r[0] for n, r in rates.items()}}
    if not idle:
        section.ok('learning rate', summary, **details)
        return
    who = f'clients {idle}' if CENTRAL_CLIENT not in idle else 'the central client'
    scaffold = ' and, under SCAFFOLD, keep their c_i (a turn that did not move carries no information for it)'
    section.warning(
        'learning rate',
        f'{summary}: every step of {who} has learning rate 0, so their turns send back the global state unchanged'
        f'{scaffold if args.fed_alg == "scaffold" else ""} and only dilute the average',
        STEPS_FIX,
        **details,
    )


def _check_wire(section: Section, footprint: Footprint, args: Any, schedule: List[List[int]]) -> None:
    sent, received = footprint.wire_per_client()
    per_round = max(len(clients) for clients in schedule) * (sent + received)
    total = sum(len(clients) for clients in schedule) * (sent + received)
    section.ok(
        'wire',
        f'per sampled client and round: {format_bytes(sent)} sent, {format_bytes(received)} received'
        + (' (state + SCAFFOLD c / Delta c_i)' if footprint.control else ' (the trainable state, float32)')
        + f'; per round up to {format_bytes(per_round)}; whole run {format_bytes(total)}',
        sent_per_client=sent,
        received_per_client=received,
        per_round=per_round,
        total=total,
    )


def free_space(path: str) -> Tuple[int, str]:
    """(free bytes, the directory measured): the nearest existing ancestor of ``path``."""
    directory = os.path.abspath(path)
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    return shutil.disk_usage(directory).free, directory


def _check_disk(
    section: Section, footprint: Footprint, args: Any, clients_per_round: int, disk_budget: Optional[int]
) -> None:
    saves = len({r for r in range(1, args.round + 1) if r % args.save_every == 0 or r == args.round})
    checkpoints = footprint.peak(args.client_num)
    client_updates = args.round * clients_per_round * footprint.state if args.save_client_updates else 0
    needed = checkpoints + saves * footprint.adapter + client_updates
    if disk_budget is None:
        available, measured = free_space(args.output_dir)
        where = f'free on {measured}'
    else:
        available, where = disk_budget, 'in --disk_budget'
    parts = (
        f'checkpoint {format_bytes(footprint.checkpoint())} (global state '
        f'{format_bytes(footprint.state)} + strategy state {format_bytes(footprint.strategy)})'
        + (
            f', client state {format_bytes(footprint.client_state(args.client_num))} (SCAFFOLD c_i '
            f'{format_bytes(footprint.control)} x {args.client_num} clients x 2 versions)'
            if footprint.control
            else ''
        )
        + f', {format_bytes(checkpoints)} at the peak while the next round is written; {saves} global adapters x '
        f'{format_bytes(footprint.adapter)}'
        + (f'; client updates {format_bytes(client_updates)}' if client_updates else '')
    )
    details = {
        'checkpoint': footprint.checkpoint(),
        'client_state': footprint.client_state(args.client_num),
        'peak_checkpoints': checkpoints,
        'global_state': footprint.state,
        'strategy_state': footprint.strategy,
        'client_control': footprint.control,
        'adapter': footprint.adapter,
        'adapter_saves': saves,
        'client_updates': client_updates,
        'needed': needed,
        'available': available,
    }
    message = f'needs {format_bytes(needed)} of {format_bytes(available)} {where}: {parts}'
    if needed > available:
        section.blocking(
            'disk',
            message,
            f'free {format_bytes(needed - available)} or more, or point --output_dir at a larger disk (fewer saves: '
            'raise --save_every)',
            **details,
        )
    else:
        section.ok('disk', message, **details)


def check_plan(
    args: Any, reports: Sequence[CheckReport], scope: Optional[TrainableScope], disk_budget: Optional[int]
) -> Section:
    section = Section('Federated plan')
    schedule = [
        clients_for_round(args.fed_alg, r, args.client_num, args.client_sample, args.seed, args.local_client)
        for r in range(args.round)
    ]
    rows = _client_rows(section, args, reports) if reports else None
    if rows is None:
        section.skipped('local steps', 'not planned: no client rows (see Data and clients)')
    else:
        _check_steps(section, args, rows, schedule)
    if scope is None:
        section.skipped('wire', 'not planned: the trainable parameters are unknown (see LoRA scope)')
        return section
    footprint = measure_footprint(args.fed_alg, args.client_num, scope.numel, scope.nbytes)
    _check_wire(section, footprint, args, schedule)
    _check_disk(section, footprint, args, max(len(clients) for clients in schedule), disk_budget)
    return section
