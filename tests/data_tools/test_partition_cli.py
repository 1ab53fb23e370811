"""The partition command's rough edges: it creates the output folder, explains a --split that keeps nothing (no
`split` column, or none of that split) instead of flwr's message, warns before replacing a client_id, and titles the
report chart with the method, label, options and seed."""

import json

import pytest

from data_tools import partition
from tests.conftest import read_jsonl


def write(path, records):
    path.write_text(''.join(json.dumps(record) + '\n' for record in records))
    return str(path)


def episodes(count, **extra):
    return [{'episode_id': e, 'app': ['Clock', 'Maps'][e % 2], **extra} for e in range(count)]


def run(argv, capsys):
    """(exit status, stderr) of the command."""
    try:
        status = partition.main(argv)
    except SystemExit as exit:  # argparse's error exit
        status = exit.code
    return status, capsys.readouterr().err


def test_the_output_folder_is_created(tmp_path, capsys):
    source = write(tmp_path / 'in.jsonl', episodes(6))
    target = tmp_path / 'new' / 'folder' / 'out.jsonl'
    assert run(['--input', source, '--output', str(target), '--num_clients', '2'], capsys)[0] == 0
    assert sorted(row['client_id'] for row in read_jsonl(target)) == [0, 0, 0, 1, 1, 1]


def test_split_without_a_split_column_names_the_fix(tmp_path, capsys):
    source = write(tmp_path / 'in.jsonl', episodes(6))
    status, err = run(
        ['--input', source, '--output', str(tmp_path / 'o'), '--num_clients', '2', '--split', 'train'], capsys
    )
    assert status == 2 and 'no row has a `split` value, so --split train keeps nothing. Drop --split' in err
    assert 'number of partitions' not in err and not (tmp_path / 'o').exists()


def test_a_split_with_no_rows_lists_the_splits_there_are(tmp_path, capsys):
    source = write(tmp_path / 'in.jsonl', episodes(3, split='train') + [{'episode_id': 9, 'split': 'test'}])
    argv = ['--input', source, '--output', str(tmp_path / 'o'), '--num_clients', '2', '--split', 'validation']
    status, err = run(argv, capsys)
    assert status == 2 and "no row has split 'validation' (rows per split: test: 1, train: 3)" in err
    argv[-1], argv[-3] = 'test', '5'  # one test episode for five clients
    status, err = run(argv, capsys)
    assert status == 2 and '1 episodes (rows without episode_id count one each) cannot be dealt to 5 clients' in err


def test_replacing_client_ids_is_announced(tmp_path, capsys):
    source = write(tmp_path / 'in.jsonl', episodes(4, client_id=7)[:3] + episodes(4)[3:])
    target = tmp_path / 'out.jsonl'
    status, err = run(['--input', source, '--output', str(target), '--num_clients', '2'], capsys)
    assert status == 0 and f'warning: {source}: 3 of the 4 rows already have a client_id; {target} gets' in err
    assert {row['client_id'] for row in read_jsonl(target)} == {0, 1}


def test_report_chart_title_names_method_label_options_and_seed(tmp_path, capsys, monkeypatch):
    import flwr_datasets.visualization as visualization

    titles = []
    plot = visualization.plot_label_distributions

    def recording_plot(*args, **kwargs):
        titles.append(kwargs['title'])
        return plot(*args, **kwargs)

    monkeypatch.setattr(visualization, 'plot_label_distributions', recording_plot)
    source = write(tmp_path / 'in.jsonl', episodes(40))
    argv = ['--input', source, '--output', str(tmp_path / 'o.jsonl'), '--num_clients', '2', '--method', 'dirichlet']
    argv += ['--partition_by', 'app', '--alpha', '0.3', '--seed', '7', '--report_dir', str(tmp_path / 'report')]
    assert run(argv, capsys)[0] == 0
    assert titles == [
        'dirichlet partition into 2 clients (partition_by=app, alpha=0.3, seed=7): episodes per client and app'
    ]
    assert (tmp_path / 'report' / 'partition_report.png').stat().st_size > 1000


@pytest.mark.parametrize(
    'method, options, expected',
    [
        ('iid', {}, 'iid partition into 3 clients (seed=1): episodes per client and app'),
        (
            'size',
            {'growth': 'square'},
            'size partition into 3 clients (growth=square, seed=1): episodes per client and app',
        ),
    ],
)
def test_report_title_of_label_free_methods(method, options, expected):
    assert partition.report_title(method, 'app', 1, 3, options) == expected
