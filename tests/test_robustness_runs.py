"""Whole runs at the edges: SCAFFOLD clients whose only step has learning rate 0, and stop signals sent to the
``swift-fed`` wrapper (the hooked ``swift sft`` wrapper, with a resume, is in test_resume.py)."""

import glob
import json
import os
import signal
import subprocess
import time

import psutil
import pytest
from safetensors.torch import load_file

from swift_ext.cli.hook import is_federated_swift_sft_wrapper
from tests.conftest import BIN_DIR, OFFLINE_ENV, as_argv, load_adapter, read_jsonl, run_cli, run_dir, tiny_lora_options


def test_scaffold_with_one_step_clients_in_the_warmup_completes(tiny_model_dir, sample_jsonl, tmp_path):
    # FedMABench semantics (--max_steps -1): each client trains one epoch over ceil(4 rows / 10) = 1 row, i.e. one
    # step, and --warmup_ratio 0.03 (FedMABench's scripts) makes that step's learning rate 0.
    options = {**tiny_lora_options(tiny_model_dir, sample_jsonl, str(tmp_path)), 'max_steps': -1,
               'num_train_epochs': 1, 'warmup_ratio': 0.03, 'fed_alg': 'scaffold', 'round': 2, 'client_num': 4,
               'client_sample': 2, 'round_per_epoch': 10}  # fmt: skip
    run_cli(['swift-fed', 'sft', *as_argv(options)])
    run = run_dir(str(tmp_path))
    clients = [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'client']
    assert len(clients) == 4 and all(row['status'] == 'ok' and row['steps'] == 1 for row in clients)
    assert all('c_i kept, Delta c_i = 0' in ' '.join(row['detail']) for row in clients)
    # No client moved: the global adapter is still PEFT's initialisation (lora_B = 0), and SCAFFOLD's server control
    # c = mean of the Delta c_i = 0.
    adapter = load_adapter(os.path.join(run, 'global_lora_2'))
    assert all(not tensor.any() for name, tensor in adapter.items() if 'lora_B' in name)
    control = load_file(os.path.join(run, 'fed_checkpoint', 'round_2', 'strategy_state.safetensors'))
    assert control and all(not tensor.any() for tensor in control.values())


def test_hook_finds_the_wrapper_of_a_federated_swift_sft(tmp_path):
    swift = str(BIN_DIR / 'swift')
    config = tmp_path / 'fed.yaml'
    config.write_text('model: m\nfed_alg: fedavg\n')
    plain = tmp_path / 'plain.json'
    plain.write_text(json.dumps({'model': 'm'}))
    assert is_federated_swift_sft_wrapper([swift, 'sft', '--model', 'm', '--fed_alg', 'fedavg'])
    assert is_federated_swift_sft_wrapper([swift, 'sft', str(config)])
    assert not is_federated_swift_sft_wrapper([swift, 'sft', str(plain)])
    assert not is_federated_swift_sft_wrapper([swift, 'sft', '--model', 'm'])
    assert not is_federated_swift_sft_wrapper([swift, 'infer', '--fed_alg', 'fedavg'])
    assert not is_federated_swift_sft_wrapper([str(BIN_DIR / 'python'), 'sft', '--fed_alg', 'fedavg'])


@pytest.mark.parametrize('stop', [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_to_the_swift_fed_wrapper_stops_the_training_process(
    tiny_model_dir, sample_jsonl, tmp_path, stop
):
    """The signal reaches the training process, which stops; the wrapper exits with its status, 128 + signal."""
    options = {**tiny_lora_options(tiny_model_dir, sample_jsonl, str(tmp_path)), 'round': 3, 'client_num': 4}
    log = tmp_path / 'output.log'
    with open(log, 'w') as output:
        wrapper = subprocess.Popen(
            [str(BIN_DIR / 'swift-fed'), 'sft', *as_argv(options)], env={**os.environ, **OFFLINE_ENV},
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while wrapper.poll() is None and time.monotonic() < deadline and not glob.glob(str(tmp_path / 'v*/args.json')):
            time.sleep(0.05)  # args.json: the training process is past its set-up and training is about to start
        processes = [psutil.Process(wrapper.pid), *psutil.Process(wrapper.pid).children(recursive=True)]
        os.kill(wrapper.pid, stop)
        assert wrapper.wait(timeout=30) == 128 + stop
        _, alive = psutil.wait_procs(processes[1:], timeout=30)
        assert not alive, f'left behind: {alive}'
    finally:
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
    assert f'stopped by {signal.Signals(stop).name}' in log.read_text()
    assert not os.path.exists(os.path.join(run_dir(str(tmp_path)), 'global_lora_3'))  # it did not run on
