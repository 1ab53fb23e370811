"""Client partitions of Android-Control rows with flwr-datasets partitioners; episodes are never split.

Rows are grouped by ``episode_id`` (each row is its own group when the column is absent); one flwr-datasets
partitioner, chosen by method name from ``METHODS``, partitions the groups, and every row inherits its group's client.

CLI (writes ``client_id`` into every kept row and a report of episodes per client x label, CSV + PNG)::

    python -m data_tools.partition --input conv.jsonl --output conv_clients.jsonl --method dirichlet \\
        --partition_by app --alpha 0.5 --num_clients 10 --seed 42 --report_dir reports/
"""

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from datasets import Dataset
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    ExponentialPartitioner,
    IidPartitioner,
    LinearPartitioner,
    NaturalIdPartitioner,
    Partitioner,
    PathologicalPartitioner,
    SquarePartitioner,
)

from data_tools.jsonl import dumps, iter_jsonl

GROUP = '__group__'
MISSING_LABEL = 'unknown'
MAX_LEGEND_LABELS = 20

SIZE_GROWTH: Dict[str, Callable[[int], Partitioner]] = {
    'linear': LinearPartitioner,
    'square': SquarePartitioner,
    'exponential': ExponentialPartitioner,
}


@dataclass(frozen=True)
class Method:
    """``build(num_clients, seed, options)``; ``shuffle``: shuffle groups with the seed first (label-free methods,
    as FederatedDataset does); ``options``: accepted option names (``partition_by`` is required when listed)."""

    build: Callable[[int, int, Dict], Partitioner]
    shuffle: bool
    options: Tuple[str, ...] = ()


def _size(num_clients: int, seed: int, options: Dict) -> Partitioner:
    growth = options.get('growth', 'linear')
    if growth not in SIZE_GROWTH:
        raise ValueError(f'growth={growth!r}; choose one of {sorted(SIZE_GROWTH)}')
    return SIZE_GROWTH[growth](num_clients)


METHODS: Dict[str, Method] = {
    'iid': Method(lambda n, seed, o: IidPartitioner(num_partitions=n), shuffle=True),
    'natural': Method(
        lambda n, seed, o: NaturalIdPartitioner(partition_by=o['partition_by']),
        shuffle=False,
        options=('partition_by',),
    ),
    'dirichlet': Method(
        lambda n, seed, o: DirichletPartitioner(
            num_partitions=n,
            partition_by=o['partition_by'],
            alpha=o.get('alpha', 0.5),
            min_partition_size=o.get('min_partition_size', 0),
            self_balancing=o.get('self_balancing', False),
            seed=seed,
        ),
        shuffle=False,
        options=('partition_by', 'alpha', 'min_partition_size', 'self_balancing'),
    ),
    'pathological': Method(
        lambda n, seed, o: PathologicalPartitioner(
            num_partitions=n,
            partition_by=o['partition_by'],
            num_classes_per_partition=o.get('k', 2),
            class_assignment_mode=o.get('class_assignment_mode', 'random'),
            seed=seed,
        ),
        shuffle=False,
        options=('partition_by', 'k', 'class_assignment_mode'),
    ),
    'size': Method(_size, shuffle=True, options=('growth',)),
}


def _groups(dataset: Dataset) -> Tuple[List[int], List[int]]:
    """(group of every row, first row of every group); groups are episode ids in order of first appearance,
    and a row without an episode_id is a group of its own."""
    keys = dataset['episode_id'] if 'episode_id' in dataset.column_names else [None] * len(dataset)
    group_of_key: Dict[object, int] = {}
    row_groups, first_rows = [], []
    for row, episode in enumerate(keys):
        key = ('row', row) if episode is None else ('episode', episode)
        if key not in group_of_key:
            group_of_key[key] = len(first_rows)
            first_rows.append(row)
        row_groups.append(group_of_key[key])
    return row_groups, first_rows


def _check_options(method: str, options: Dict) -> Method:
    if method not in METHODS:
        raise ValueError(f'Unknown partition method {method!r}; choose one of {sorted(METHODS)}.')
    spec = METHODS[method]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(f'method {method!r} takes options {list(spec.options)}, not {unknown}')
    if 'partition_by' in spec.options and not options.get('partition_by'):
        raise ValueError(f'method {method!r} needs partition_by=<column>, e.g. app or category')
    return spec


def partition_groups(
    dataset: Dataset, num_clients: int, method: str = 'iid', seed: int = 42, label: Optional[str] = None, **options
) -> Tuple[List[int], Partitioner]:
    """Client id of every row and the fitted partitioner, whose dataset has one row per episode and a ``label``
    column (``partition_by`` by default; missing values read ``'unknown'``) for reports."""
    spec = _check_options(method, options)
    row_groups, first_rows = _groups(dataset)
    if len(first_rows) < num_clients:
        raise ValueError(
            f'{len(first_rows)} episodes (rows without episode_id count one each) cannot be dealt to {num_clients} '
            'clients: a client gets whole episodes' + ('' if first_rows else ' (there are no rows to partition)')
        )
    label = options.get('partition_by') or label
    columns = {GROUP: list(range(len(first_rows)))}
    if label:
        if label not in dataset.column_names:
            raise ValueError(f'column {label!r} not in the dataset (columns: {dataset.column_names})')
        values = dataset[label]
        columns[label] = [MISSING_LABEL if values[r] is None else str(values[r]) for r in first_rows]
    groups = Dataset.from_dict(columns)
    partitioner = spec.build(num_clients, seed, options)
    partitioner.dataset = groups.shuffle(seed=seed) if spec.shuffle else groups
    if partitioner.num_partitions != num_clients:
        raise ValueError(f'method {method!r} makes {partitioner.num_partitions} clients, num_clients={num_clients}')
    group_client = [-1] * len(first_rows)
    for client in range(num_clients):
        for group in partitioner.load_partition(client)[GROUP]:
            group_client[group] = client
    unassigned = group_client.count(-1)
    if unassigned:
        raise ValueError(f'method {method!r} left {unassigned} episodes without a client (options {options})')
    return [group_client[g] for g in row_groups], partitioner


def assign_client_ids(dataset: Dataset, num_clients: int, method: str = 'iid', seed: int = 42, **options) -> List[int]:
    """Client id (0..num_clients-1) of every row, in row order; rows of one episode_id share a client.

    Methods: 'iid' (groups shuffled with ``seed``, then IidPartitioner), 'natural' (one client per value of
    ``partition_by``), 'dirichlet' (``partition_by``, ``alpha``=0.5, ``min_partition_size``=0, ``self_balancing``),
    'pathological' (``partition_by``, ``k``=2 labels per client, ``class_assignment_mode``='random'),
    'size' (``growth``='linear'|'square'|'exponential' client sizes, groups shuffled with ``seed``).
    """
    return partition_groups(dataset, num_clients, method, seed, **options)[0]


def report_title(method: str, label: str, seed: int, num_clients: int, options: Dict) -> str:
    """The report chart's title: the method with the options it took (partition_by, alpha, ...) and the seed, and
    what the bars count."""
    settings = ', '.join([*(f'{name}={value}' for name, value in options.items()), f'seed={seed}'])
    return f'{method} partition into {num_clients} clients ({settings}): episodes per client and {label}'


def write_report(
    partitioner: Partitioner, label: str, report_dir: str, title: Optional[str] = None
) -> Dict[str, Dict[str, int]]:
    """Write ``partition_report.csv`` (episodes per client x label) and ``partition_report.png`` (titled ``title``,
    see :func:`report_title`) with flwr-datasets' ``plot_label_distributions``; returns the counts as
    {client: {label: episodes}}."""
    import matplotlib

    matplotlib.use('Agg')  # headless: only files are written
    from flwr_datasets.visualization import plot_label_distributions

    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    num_labels = len(partitioner.dataset.unique(label))
    figure, _, counts = plot_label_distributions(
        partitioner,
        label_name=label,
        title=title or f'Episodes per client and {label}',
        legend=num_labels <= MAX_LEGEND_LABELS,  # hundreds of apps would bury the bars
        verbose_labels=False,
    )
    figure.savefig(out / 'partition_report.png', bbox_inches='tight')
    counts.to_csv(out / 'partition_report.csv')
    return {str(client): {str(k): int(v) for k, v in row.items()} for client, row in counts.iterrows()}


CLI_OPTIONS = ('partition_by', 'alpha', 'k', 'growth')  # passed on as given; a method rejects the ones it lacks


def _kept(record: Dict, split: Optional[str], test_subsplit: Optional[str]) -> bool:
    return (split is None or record.get('split') == split) and (
        test_subsplit is None or test_subsplit in (record.get('test_subsplits') or [])
    )


def nothing_kept_reason(path: str, split: Optional[str], test_subsplit: Optional[str], seen: Dict[str, Counter]) -> str:
    """Why ``--split``/``--test_subsplit`` kept no row of ``path``, with the values the rows do have (``seen``:
    'split' and 'test_subsplits' -> value counts)."""
    for option, value, key in (('--split', split, 'split'), ('--test_subsplit', test_subsplit, 'test_subsplits')):
        if value is None or value in seen[key]:
            continue
        if not seen[key]:
            return (
                f'{path}: no row has a `{key}` value, so {option} {value} keeps nothing. Drop {option}, or unpack '
                'the data with the official splits (data_tools.unpack --splits/--test_subsplits).'
            )
        present = ', '.join(f'{name}: {count}' for name, count in sorted(seen[key].items()))
        return f'{path}: no row has {key} {value!r} (rows per {key}: {present}).'
    if split is not None and test_subsplit is not None:
        return f'{path}: no row of split {split!r} is in test sub-split {test_subsplit!r}.'
    return f'{path}: no rows to partition.'


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='JSONL rows (conversations, step- or episode-wise records).')
    parser.add_argument('--output', required=True, help='JSONL to write: the kept rows with a client_id column.')
    parser.add_argument('--method', default='iid', choices=sorted(METHODS))
    parser.add_argument('--num_clients', type=int, required=True)
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--partition_by', help='Label column for natural/dirichlet/pathological (app, category, ...).')
    parser.add_argument('--alpha', type=float, help='Dirichlet concentration.')
    parser.add_argument('--k', type=int, help='Pathological: labels per client.')
    parser.add_argument('--growth', choices=sorted(SIZE_GROWTH), help='Size-skewed client sizes.')
    parser.add_argument('--split', help='Keep only rows of this official split (train, validation, test).')
    parser.add_argument('--test_subsplit', help='Keep only rows of this test sub-split (IDD, app_unseen, ...).')
    parser.add_argument('--report_dir', help='Write partition_report.{csv,png} here.')
    parser.add_argument('--report_label', default='app', help='Label column of the report for label-free methods.')
    args = parser.parse_args(argv)

    options = {name: getattr(args, name) for name in CLI_OPTIONS if getattr(args, name) is not None}
    label = args.partition_by or args.report_label
    columns: Dict[str, list] = {'episode_id': [], 'line': [], label: []}
    seen: Dict[str, Counter] = {'split': Counter(), 'test_subsplits': Counter()}
    with_client_id = 0
    for line_no, record in iter_jsonl(args.input):
        if isinstance(record, str) or 'episode_id' not in record:
            parser.error(f'{args.input}:{line_no}: {record if isinstance(record, str) else "no episode_id"}')
        if record.get('split') is not None:
            seen['split'][record['split']] += 1
        seen['test_subsplits'].update(record.get('test_subsplits') or [])
        if _kept(record, args.split, args.test_subsplit):
            with_client_id += 'client_id' in record
            row = {**record, 'line': line_no}
            for name, values in columns.items():
                values.append(row.get(name))
    if not columns['line']:
        parser.error(nothing_kept_reason(args.input, args.split, args.test_subsplit, seen))
    try:
        client_ids, partitioner = partition_groups(
            Dataset.from_dict(columns), args.num_clients, args.method, args.seed, label=label, **options
        )
    except ValueError as exc:
        parser.error(f'{args.input}: {exc}')
    if with_client_id:
        print(
            f'warning: {args.input}: {with_client_id} of the {len(client_ids)} rows already have a client_id; '
            f"{args.output} gets the new partition's instead",
            file=sys.stderr,
        )
    client_of_line = dict(zip(columns['line'], client_ids))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, 'w', encoding='utf-8') as out:
        for line_no, record in iter_jsonl(args.input):
            if line_no in client_of_line:
                out.write(dumps({**record, 'client_id': client_of_line[line_no]}))
    if args.report_dir:
        title = report_title(args.method, label, args.seed, args.num_clients, options)
        write_report(partitioner, label, args.report_dir, title)
    print(f'{args.output}: {len(client_ids)} rows, {len(set(columns["episode_id"]))} episodes', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
