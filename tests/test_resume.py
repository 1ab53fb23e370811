"""Runs stopped the ways real machines stop them and resumed with --resume end with the same adapter as an
uninterrupted run: SIGKILL during round 2, a log line cut short by a full disk, SIGTERM to the ``swift`` wrapper, a
kill before the first checkpoint. A refused or pointless resume leaves the run directory untouched."""

import glob
import os
import shutil
import signal
import subprocess
import time

import psutil
import pytest
import torch

from tests.conftest import BIN_DIR, OFFLINE_ENV, as_argv, load_adapter, read_jsonl, run_cli, run_dir, tiny_lora_options

ROUNDS = 3


def scaffold_argv(model_dir, dataset, output_dir, **changes):
    # SCAFFOLD: the checkpoint must carry the global state, the server control c and every client's c_i.
    options = {
        **tiny_lora_options(model_dir, dataset, output_dir),
        'fed_alg': 'scaffold',
        'round': ROUNDS,
        'client_num': 4,
        'client_sample': 2,
        'save_every': 1,
        **changes,
    }
    return ['sft', *as_argv(options)]


@pytest.fixture(scope='module')
def uninterrupted(tiny_model_dir, sample_jsonl, tmp_path_factory):
    """The run every stopped-and-resumed run must reproduce: its directory and final adapter."""
    output_dir = str(tmp_path_factory.mktemp('uninterrupted'))
    run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, output_dir)])
    run = run_dir(output_dir)
    return run, load_adapter(os.path.join(run, f'global_lora_{ROUNDS}'))


def start(argv):
    return subprocess.Popen(
        [str(BIN_DIR / 'swift'), *argv], env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def wait_for(process, output_dir, ready):
    """Poll until ``ready(run_dir)`` (the run dir once ms-swift made it); fail if the run ends first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        runs = glob.glob(os.path.join(output_dir, 'v*-*'))
        if runs and ready(runs[0]):
            return
        time.sleep(0.02)
    raise AssertionError(f'the run ended (exit {process.poll()}) or timed out before the moment to stop it')


def checkpoint_of_round(round_number):
    def ready(run):
        pointer = os.path.join(run, 'fed_checkpoint', 'latest')
        return os.path.isfile(pointer) and open(pointer).read().strip() == f'round_{round_number}'

    return ready


def sigkill(process):
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


@pytest.fixture(scope='module')
def killed_in_round_two(tiny_model_dir, sample_jsonl, tmp_path_factory):
    """A run SIGKILLed as soon as round 1's checkpoint is complete (round 2 is then under way); tests resume copies."""
    output_dir = str(tmp_path_factory.mktemp('killed'))
    process = start(scaffold_argv(tiny_model_dir, sample_jsonl, output_dir))
    try:
        wait_for(process, output_dir, checkpoint_of_round(1))
    finally:
        sigkill(process)
    assert process.returncode == -signal.SIGKILL
    run = run_dir(output_dir)
    assert not os.path.exists(os.path.join(run, f'global_lora_{ROUNDS}'))
    return run


def copy_run(run, tmp_path):
    """The run in a fresh output directory (same run name), so each test resumes its own copy."""
    output_dir = tmp_path / 'out'
    copy = shutil.copytree(run, output_dir / os.path.basename(run))
    return str(output_dir), str(copy)


def assert_same_adapter(run, expected):
    resumed = load_adapter(os.path.join(run, f'global_lora_{ROUNDS}'))
    assert resumed.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6)
    rounds = [row['round'] for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'round']
    assert rounds == list(range(1, ROUNDS + 1))
    assert sorted(os.listdir(os.path.join(run, 'fed_checkpoint'))) == ['latest', f'round_{ROUNDS}']


def test_sigkill_in_round_two_then_resume_matches_uninterrupted(
    uninterrupted, killed_in_round_two, tiny_model_dir, sample_jsonl, tmp_path
):
    output_dir, run = copy_run(killed_in_round_two, tmp_path)
    run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, output_dir), '--resume', 'true'])
    assert run_dir(output_dir) == run, 'resume must continue in the same run directory'
    assert_same_adapter(run, uninterrupted[1])


def test_a_log_line_cut_short_by_a_full_disk_is_dropped_on_resume(
    uninterrupted, killed_in_round_two, tiny_model_dir, sample_jsonl, tmp_path
):
    """The issue's run: the disk filled up during an append to fed_log.jsonl (and to ms-swift's logging.jsonl)
    and left a row's first bytes without a newline; every later --resume died with JSONDecodeError."""
    output_dir, run = copy_run(killed_in_round_two, tmp_path)
    fed_log, logging_jsonl = os.path.join(run, 'fed_log.jsonl'), os.path.join(run, 'logging.jsonl')
    offsets = {}
    for path, partial in ((fed_log, '{"type": "client", "samp'), (logging_jsonl, '{"loss": 11.9, "grad_n')):
        offsets[path] = os.path.getsize(path)
        with open(path, 'a', encoding='utf-8') as f:
            f.write(partial)
    output = run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, output_dir), '--resume', 'true'])
    for path, offset in offsets.items():
        assert f'{path}: dropping an incomplete last line at byte offset {offset}' in output
    assert_same_adapter(run, uninterrupted[1])
    read_jsonl(logging_jsonl)  # every line of ms-swift's log is a complete row again


def test_sigterm_to_the_swift_wrapper_stops_training_and_resume_matches_uninterrupted(
    uninterrupted, tiny_model_dir, sample_jsonl, tmp_path
):
    """What Slurm or ``docker stop`` does: SIGTERM to the PID it started, the ``swift`` wrapper; the training
    process is its child and must not run on as an orphan."""
    output_dir = str(tmp_path)
    wrapper = start(scaffold_argv(tiny_model_dir, sample_jsonl, output_dir))
    try:
        wait_for(wrapper, output_dir, checkpoint_of_round(1))
        children = psutil.Process(wrapper.pid).children(recursive=True)
        assert children, 'the wrapper has started the training process'
        os.kill(wrapper.pid, signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f'left behind: {alive}'
    finally:
        if wrapper.poll() is None:
            sigkill(wrapper)
    run = run_dir(output_dir)
    assert not os.path.exists(os.path.join(run, f'global_lora_{ROUNDS}'))
    run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, output_dir), '--resume', 'true'])
    assert_same_adapter(run, uninterrupted[1])


def test_a_run_killed_before_its_first_checkpoint_resumes_from_round_one(
    uninterrupted, tiny_model_dir, sample_jsonl, tmp_path
):
    output_dir = str(tmp_path)
    process = start(scaffold_argv(tiny_model_dir, sample_jsonl, output_dir))
    try:  # args.json is written once the data is ready, just before round 1
        wait_for(process, output_dir, lambda run: os.path.isfile(os.path.join(run, 'args.json')))
    finally:
        sigkill(process)
    run = run_dir(output_dir)
    assert not os.path.exists(os.path.join(run, 'fed_checkpoint', 'latest'))
    output = run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, output_dir), '--resume', run])
    assert 'no complete round' in output and 'starting round 1 again' in output
    assert run_dir(output_dir) == run
    assert_same_adapter(run, uninterrupted[1])


def snapshot(run):
    """Every file of the run directory with its bytes."""
    files = {}
    for root, _, names in os.walk(run):
        for name in names:
            with open(os.path.join(root, name), 'rb') as f:
                files[os.path.relpath(os.path.join(root, name), run)] = f.read()
    return files


def test_a_refused_resume_leaves_the_run_untouched(uninterrupted, tiny_model_dir, sample_jsonl, tmp_path):
    output_dir, run = copy_run(uninterrupted[0], tmp_path)
    before = snapshot(run)
    argv = scaffold_argv(tiny_model_dir, sample_jsonl, output_dir, fed_alg='fedavg')
    result = subprocess.run(
        [str(BIN_DIR / 'swift'), *argv, '--resume', 'true'], env={**os.environ, **OFFLINE_ENV}, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'records --fed_alg scaffold (given: fedavg)' in result.stdout + result.stderr
    assert snapshot(run) == before  # args.json byte-identical, no TensorBoard file, nothing else


def test_resuming_a_finished_run_trains_nothing_and_writes_nothing(
    uninterrupted, tiny_model_dir, sample_jsonl, tmp_path
):
    output_dir, run = copy_run(uninterrupted[0], tmp_path)
    before = snapshot(run)
    output = run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, output_dir), '--resume', 'true'])
    assert f'{run} is complete ({ROUNDS} rounds done, --round {ROUNDS}); nothing to train' in output
    assert snapshot(run) == before  # in particular no second, empty summary in logging.jsonl
