"""flwr-datasets client partitions: determinism, whole episodes, skew, report, CLI with official splits."""

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from datasets import Dataset
from flwr_datasets.partitioner import IidPartitioner

from data_tools.partition import assign_client_ids, partition_groups, write_report
from tests.conftest import read_jsonl

REPO = Path(__file__).resolve().parents[2]
APPS = ['Gmail', 'Chrome', 'Maps', 'Clock']


def steps_dataset(num_episodes=200, steps=3):
    """Step rows: episode e has ``steps`` consecutive rows and app APPS[e % 4]."""
    rows = [(e, APPS[e % len(APPS)]) for e in range(num_episodes) for _ in range(steps)]
    return Dataset.from_dict({'episode_id': [e for e, _ in rows], 'app': [a for _, a in rows]})


def episodes_by_client(dataset, client_ids):
    clients = defaultdict(set)
    for episode, client in zip(dataset['episode_id'], client_ids):
        clients[episode].add(client)
    return clients


@pytest.mark.parametrize(
    ('method', 'options'),
    [
        ('iid', {}),
        ('dirichlet', {'partition_by': 'app', 'alpha': 0.5}),
        ('pathological', {'partition_by': 'app', 'k': 2}),
        ('size', {'growth': 'linear'}),
    ],
)
def test_seeded_and_episodes_never_split(method, options):
    data = steps_dataset()
    first = assign_client_ids(data, 5, method, seed=7, **options)
    assert first == assign_client_ids(data, 5, method, seed=7, **options)
    assert first != assign_client_ids(data, 5, method, seed=8, **options)
    assert set(first) == set(range(5))
    assert all(len(clients) == 1 for clients in episodes_by_client(data, first).values())


def test_iid_on_episode_rows_is_iid_partitioner_over_rows_shuffled_with_the_seed():
    data = Dataset.from_dict({'episode_id': [10 * i for i in range(23)], 'app': ['x'] * 23})
    shuffled = Dataset.from_dict({'row': list(range(23))}).shuffle(seed=3)
    partitioner = IidPartitioner(num_partitions=4)
    partitioner.dataset = shuffled
    expected = [0] * 23
    for client in range(4):
        for row in partitioner.load_partition(client)['row']:
            expected[row] = client
    assert assign_client_ids(data, 4, 'iid', seed=3) == expected
    assert sorted(Counter(expected).values()) == [5, 6, 6, 6]


def test_step_rows_get_their_episode_client_under_iid():
    steps, episodes = steps_dataset(40, 3), steps_dataset(40, 1)
    assert assign_client_ids(steps, 4, seed=1) == [c for c in assign_client_ids(episodes, 4, seed=1) for _ in range(3)]


def test_rows_without_episode_id_are_partitioned_one_by_one():
    data = Dataset.from_dict({'episode_id': [None] * 12, 'app': ['x'] * 12})
    assert sorted(Counter(assign_client_ids(data, 3, seed=0)).values()) == [4, 4, 4]


def test_natural_is_one_client_per_label_in_sorted_order():
    data = steps_dataset(8, 2)
    client_ids = assign_client_ids(data, 4, 'natural', partition_by='app')
    assert {app: client for app, client in zip(data['app'], client_ids)} == {
        'Chrome': 0,
        'Clock': 1,
        'Gmail': 2,
        'Maps': 3,
    }
    with pytest.raises(ValueError, match="method 'natural' makes 4 clients, num_clients=3"):
        assign_client_ids(data, 3, 'natural', partition_by='app')


def test_pathological_k1_gives_each_client_one_app():
    data = steps_dataset()
    options = {'partition_by': 'app', 'k': 1, 'class_assignment_mode': 'first-deterministic'}
    client_ids = assign_client_ids(data, 4, 'pathological', seed=0, **options)
    apps = defaultdict(set)
    for app, client in zip(data['app'], client_ids):
        apps[client].add(app)
    assert sorted(apps) == [0, 1, 2, 3] and all(len(a) == 1 for a in apps.values())


def test_size_growth_makes_larger_clients():
    sizes = Counter(assign_client_ids(steps_dataset(100, 1), 4, 'size', growth='square'))
    # SquarePartitioner: sizes proportional to (id + 1)^2 = 1, 4, 9, 16 of 100 episodes, rest to the last client
    assert [sizes[c] for c in range(4)] == [3, 13, 30, 54]


def test_dirichlet_skew_is_visible_in_the_report(tmp_path):
    data = steps_dataset(400, 1)

    def mean_top_share(method, **options):
        _, partitioner = partition_groups(data, 8, method, seed=0, label='app', **options)
        counts = write_report(partitioner, 'app', str(tmp_path / method))
        shares = [max(row.values()) / sum(row.values()) for row in counts.values() if sum(row.values())]
        return sum(shares) / len(shares), counts

    iid_share, iid_counts = mean_top_share('iid')
    skewed_share, skewed_counts = mean_top_share('dirichlet', partition_by='app', alpha=0.1)
    assert iid_share < 0.45 and skewed_share > 0.7
    assert sum(sum(row.values()) for row in skewed_counts.values()) == 400
    assert sorted(skewed_counts['0']) == sorted(APPS)
    assert (tmp_path / 'dirichlet/partition_report.png').stat().st_size > 1000
    assert (tmp_path / 'dirichlet/partition_report.csv').read_text().splitlines()[0].split(',')[1:] == sorted(APPS)


@pytest.mark.parametrize(
    ('method', 'options', 'message'),
    [
        ('louvain', {}, "Unknown partition method 'louvain'"),
        ('iid', {'alpha': 0.5}, r"method 'iid' takes options \[\], not \['alpha'\]"),
        ('dirichlet', {'alpha': 0.5}, "method 'dirichlet' needs partition_by"),
        ('dirichlet', {'partition_by': 'user'}, "column 'user' not in the dataset"),
        (
            'pathological',
            {'partition_by': 'app', 'k': 1, 'class_assignment_mode': 'deterministic'},
            'left 100 episodes without a client',
        ),
    ],
)
@pytest.mark.filterwarnings('ignore:Classes')  # flwr-datasets warns about the unused apps before we raise
def test_bad_arguments_name_the_problem(method, options, message):
    num_clients = 2 if method == 'pathological' else 4  # 2 clients x 1 app leaves 2 of 4 apps unassigned
    with pytest.raises(ValueError, match=message):
        assign_client_ids(steps_dataset(200, 1), num_clients, method, **options)


def test_cli_partitions_the_train_split_of_pipeline_conversations(unpacked, tmp_path):
    out, _ = unpacked
    conv = tmp_path / 'conv.jsonl'
    convert = [sys.executable, str(REPO / 'scripts/convert_to_conversations.py'), '--input']
    convert += [str(out / 'step-wise-all.jsonl'), '--output', str(conv), '--image_root', str(out)]
    subprocess.run(convert, check=True, capture_output=True, cwd=REPO)
    target = tmp_path / 'clients.jsonl'
    command = [sys.executable, '-m', 'data_tools.partition', '--input', str(conv), '--output', str(target)]
    command += ['--method', 'natural', '--partition_by', 'app', '--num_clients', '2', '--split', 'train']
    command += ['--report_dir', str(tmp_path / 'report')]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(target)
    # only train episodes 101 (Settings, 6 steps) and 303 (Chrome, 5 steps); natural ids sorted: Chrome 0, Settings 1
    assert [(r['episode_id'], r['step'], r['client_id']) for r in rows] == [(101, s, 1) for s in range(6)] + [
        (303, s, 0) for s in range(5)
    ]
    assert rows[0]['conversations'][1]['value'] == 'Open App: Settings'
    report = (tmp_path / 'report/partition_report.csv').read_text().splitlines()
    assert report[0].split(',')[1:] == ['Chrome', 'Settings']
    assert [line.split(',')[1:] for line in report[1:]] == [['1', '0'], ['0', '1']]
    assert '11 rows, 2 episodes' in result.stderr


def test_cli_rejects_an_option_the_method_does_not_take(tmp_path):
    source = tmp_path / 'rows.jsonl'
    source.write_text('{"episode_id": 1, "app": "x"}\n')
    command = [sys.executable, '-m', 'data_tools.partition', '--input', str(source), '--output', str(tmp_path / 'o')]
    command += ['--method', 'iid', '--alpha', '0.5', '--num_clients', '1']
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode != 0 and "method 'iid' takes options [], not ['alpha']" in result.stderr


def test_cli_keeps_only_the_requested_test_subsplit(unpacked, tmp_path):
    out, _ = unpacked
    target = tmp_path / 'idd.jsonl'
    command = [sys.executable, '-m', 'data_tools.partition', '--input', str(out / 'step-wise-all.jsonl')]
    command += ['--output', str(target), '--num_clients', '1', '--split', 'test', '--test_subsplit', 'IDD']
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    rows = read_jsonl(target)
    assert [(r['episode_id'], r['step'], r['client_id'], r['test_subsplits']) for r in rows] == [
        (202, 0, 0, ['IDD', 'app_unseen']),
        (202, 1, 0, ['IDD', 'app_unseen']),
    ]
