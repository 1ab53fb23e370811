"""A run SIGKILLed during round 2 of 3 and resumed with --resume ends with the same adapter as an uninterrupted run."""

import glob
import os
import signal
import subprocess
import time

import torch

from tests.conftest import BIN_DIR, OFFLINE_ENV, as_argv, load_adapter, read_jsonl, run_cli, run_dir, tiny_lora_options


def scaffold_argv(model_dir, dataset, output_dir):
    # SCAFFOLD: the checkpoint must carry the global state, the server control c and every client's c_i.
    options = {
        **tiny_lora_options(model_dir, dataset, output_dir),
        'fed_alg': 'scaffold',
        'round': 3,
        'client_num': 4,
        'client_sample': 2,
        'save_every': 1,
    }
    return ['sft', *as_argv(options)]


def kill_during_round_two(argv, output_dir):
    """Start the run, SIGKILL it as soon as round 1's checkpoint is complete (round 2 is then under way)."""
    process = subprocess.Popen(
        [str(BIN_DIR / 'swift'), *argv],
        env={**os.environ, **OFFLINE_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            pointers = glob.glob(os.path.join(output_dir, '*', 'fed_checkpoint', 'latest'))
            if pointers and open(pointers[0]).read().strip() == 'round_1':
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f'the run was not killed mid-way (exit {process.returncode})'


def test_sigkill_in_round_two_then_resume_matches_uninterrupted(tiny_model_dir, sample_jsonl, tmp_path):
    uninterrupted_out, killed_out = str(tmp_path / 'full'), str(tmp_path / 'killed')
    run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, uninterrupted_out)])
    expected = load_adapter(os.path.join(run_dir(uninterrupted_out), 'global_lora_3'))

    kill_during_round_two(scaffold_argv(tiny_model_dir, sample_jsonl, killed_out), killed_out)
    killed_run = run_dir(killed_out)
    assert not os.path.exists(os.path.join(killed_run, 'global_lora_3'))
    run_cli(['swift', *scaffold_argv(tiny_model_dir, sample_jsonl, killed_out), '--resume', 'true'])
    assert run_dir(killed_out) == killed_run, 'resume must continue in the same run directory'

    resumed = load_adapter(os.path.join(killed_run, 'global_lora_3'))
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6)
    rounds = [row['round'] for row in read_jsonl(os.path.join(killed_run, 'fed_log.jsonl')) if row['type'] == 'round']
    assert rounds == [1, 2, 3]
    assert sorted(os.listdir(os.path.join(killed_run, 'fed_checkpoint'))) == ['latest', 'round_3']
