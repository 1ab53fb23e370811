"""Every --fed_alg end to end on the tiny model (in-process, two rounds), the algorithm invariants on real training,
client-update auditing, per-round evaluation, and the robustness rules (poisoned, failing and empty rounds)."""

import glob
import json
import math
import os

import pytest
import torch

import swift_ext.federated.client_node as client_node
from swift_ext.federated.pipeline import fed_sft_main
from tests.conftest import as_argv, load_adapter, read_jsonl, tiny_lora_options

ALGORITHMS = [
    'fedavg',
    'avg-epi',
    'fedprox',
    'scaffold',
    'fedavgm',
    'fedadam',
    'fedyogi',
    'fedadagrad',
    'local1',
    'central',
]


def run_federated(model_dir, dataset, output_dir, *extra):
    """A two-round, four-client federated run in this process; returns its run directory."""
    options = {
        **tiny_lora_options(model_dir, dataset, str(output_dir)),
        'round': 2,
        'client_num': 4,
        'client_sample': 2,
        'save_every': 1,
    }
    fed_sft_main([*as_argv(options), *extra])
    runs = sorted(glob.glob(os.path.join(str(output_dir), 'v*-*')), key=os.path.getmtime)
    return runs[-1]


def client_rows(run):
    return [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'client']


def round_rows(run):
    return [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'round']


@pytest.mark.parametrize('fed_alg', ALGORITHMS)
def test_every_algorithm_runs_two_rounds_and_saves_loadable_adapters(fed_alg, tiny_model_dir, sample_jsonl, tmp_path):
    from peft import PeftModel
    from transformers import Qwen2VLForConditionalGeneration

    run = run_federated(tiny_model_dir, sample_jsonl, tmp_path, '--fed_alg', fed_alg)
    first, second = (load_adapter(os.path.join(run, f'global_lora_{r}')) for r in (1, 2))
    assert any(not torch.equal(first[k], second[k]) for k in first), 'round 2 did not change the global adapter'
    assert all(torch.isfinite(t).all() for t in second.values())
    model = PeftModel.from_pretrained(
        Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir), os.path.join(run, 'global_lora_2')
    )
    loaded = {name.replace('.default', ''): p for name, p in model.named_parameters() if 'lora_' in name}
    assert all(torch.equal(loaded[key], second[key]) for key in second)
    trained = {row['client'] for row in client_rows(run)}
    expected = {'local1': {1}, 'central': {-1}}.get(fed_alg)
    assert expected is None or trained == expected
    if fed_alg == 'scaffold':
        controls = glob.glob(os.path.join(run, 'client_state', 'client_*', 'round_*.safetensors'))
        lora_bytes = sum(t.numel() * 4 for t in second.values())
        meta = json.load(open(os.path.join(run, 'fed_checkpoint', 'round_2', 'meta.json')))
        # c_i stay with the clients: the version the server counts exists, plus at most the newer one it wrote.
        assert sorted(meta['control_rounds']) == sorted({str(row['client']) for row in client_rows(run)})
        for client, counted in meta['control_rounds'].items():
            versions = glob.glob(os.path.join(run, 'client_state', f'client_{client}', 'round_*.safetensors'))
            assert os.path.join(run, 'client_state', f'client_{client}', f'round_{counted}.safetensors') in versions
        assert len(controls) <= 2 * len(meta['control_rounds'])
        # SCAFFOLD sends x and c, and receives y_i and delta c_i: twice FedAvg's traffic each way.
        assert all(row['bytes_sent'] == row['bytes_received'] == 2 * lora_bytes for row in client_rows(run))


def test_full_fine_tuning_saves_a_loadable_global_model(tiny_model_dir, sample_jsonl, tmp_path):
    from safetensors.torch import load_file
    from transformers import Qwen2VLForConditionalGeneration

    run = run_federated(
        tiny_model_dir, sample_jsonl, tmp_path, '--tuner_type', 'full', '--learning_rate', '1e-3', '--round', '1'
    )
    model = Qwen2VLForConditionalGeneration.from_pretrained(os.path.join(run, 'global_model_1'))
    base = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    global_state = load_file(os.path.join(run, 'fed_checkpoint', 'round_1', 'global_state.safetensors'))
    params = dict(model.named_parameters())
    # ms-swift's full tuning trains the language model and freezes the vision tower by default (--freeze_vit).
    assert any('language_model' in name for name in global_state) and not any('visual' in n for n in global_state)
    assert all(torch.equal(params[name], tensor) for name, tensor in global_state.items())
    changed = [name for name, p in base.named_parameters() if not torch.equal(p, params[name])]
    assert changed, 'full fine-tuning left every weight unchanged'
    assert os.path.isfile(os.path.join(run, 'global_model_1', 'tokenizer.json'))


def test_invariants_on_real_training(tiny_model_dir, sample_jsonl, tmp_path):
    fedavg = run_federated(tiny_model_dir, sample_jsonl, tmp_path / 'fedavg', '--fed_alg', 'fedavg')
    prox0 = run_federated(tiny_model_dir, sample_jsonl, tmp_path / 'prox0', '--fed_alg', 'fedprox', '--fedprox_mu', '0')
    prox = run_federated(tiny_model_dir, sample_jsonl, tmp_path / 'prox', '--fed_alg', 'fedprox', '--fedprox_mu', '50')
    scaffold = run_federated(tiny_model_dir, sample_jsonl, tmp_path / 'scaffold', '--fed_alg', 'scaffold')
    avgm = run_federated(
        tiny_model_dir,
        sample_jsonl,
        tmp_path / 'avgm',
        '--fed_alg',
        'fedavgm',
        '--server_momentum',
        '0',
        '--server_lr',
        '1',
    )
    reference = {r: load_adapter(os.path.join(fedavg, f'global_lora_{r}')) for r in (1, 2)}

    def same(run, round_number):
        other = load_adapter(os.path.join(run, f'global_lora_{round_number}'))
        return all(torch.allclose(other[k], reference[round_number][k], rtol=0, atol=1e-6) for k in other)

    assert same(prox0, 1) and same(prox0, 2)  # FedProx mu=0 == FedAvg
    assert same(avgm, 1) and same(avgm, 2)  # FedAvgM momentum 0, server lr 1 == FedAvg
    assert same(scaffold, 1)  # SCAFFOLD, first round, zero control variates == FedAvg
    assert not same(scaffold, 2), 'SCAFFOLD round 2 should use the control variates'
    assert not same(prox, 1), 'a large mu must change local training'


def test_fedadam_is_deterministic_for_a_seed(tiny_model_dir, sample_jsonl, tmp_path):
    runs = [run_federated(tiny_model_dir, sample_jsonl, tmp_path / str(i), '--fed_alg', 'fedadam') for i in range(2)]
    first, second = (load_adapter(os.path.join(run, 'global_lora_2')) for run in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_saved_client_updates_reproduce_the_aggregate(tiny_model_dir, sample_jsonl, tmp_path):
    from safetensors.torch import load_file

    run = run_federated(tiny_model_dir, sample_jsonl, tmp_path, '--save_client_updates', 'true')
    for round_number in (1, 2):
        directory = os.path.join(run, 'client_updates', f'round_{round_number}')
        updates = sorted(glob.glob(os.path.join(directory, '*.safetensors')))
        assert len(updates) == 2
        weights = [json.load(open(path.replace('.safetensors', '.json')))['weight'] for path in updates]
        states = [load_file(path) for path in updates]
        adapter = load_adapter(os.path.join(run, f'global_lora_{round_number}'))
        for key in adapter:
            name = next(n for n in states[0] if n.replace('.default', '') == key)
            expected = sum(w * s[name].double() for w, s in zip(weights, states)) / sum(weights)
            torch.testing.assert_close(adapter[key].double(), expected, rtol=0, atol=1e-6)


def test_eval_loss_per_round(tiny_model_dir, sample_jsonl, tmp_path):
    run = run_federated(
        tiny_model_dir, sample_jsonl, tmp_path, '--split_dataset_ratio', '0.25', '--fed_eval_every', '1'
    )
    evals = [row for row in read_jsonl(os.path.join(run, 'fed_log.jsonl')) if row['type'] == 'eval']
    assert [row['round'] for row in evals] == [1, 2] and all(math.isfinite(row['eval_loss']) for row in evals)
    assert os.path.isfile(os.path.join(run, 'images', 'fed_loss.png'))


def poison(monkeypatch, make_bad):
    """Wrap the real client training so that clients chosen by ``make_bad`` misbehave."""
    real = client_node.train_client

    def train(model, factory, args, dataset, result, **kwargs):
        make_bad(result.client, 'before')
        state, result = real(model, factory, args, dataset, result, **kwargs)
        if make_bad(result.client, 'after'):
            state = {name: torch.full_like(t, float('nan')) for name, t in state.items()}
        return state, result

    monkeypatch.setattr(client_node, 'train_client', train)


def test_a_poisoned_update_is_excluded_and_named(tiny_model_dir, sample_jsonl, tmp_path, monkeypatch):
    poisoned = []

    def nan_for_first_client(client, when):
        if when == 'after' and not poisoned:
            poisoned.append(client)
            return True
        return False

    poison(monkeypatch, nan_for_first_client)
    run = run_federated(tiny_model_dir, sample_jsonl, tmp_path)
    adapter = load_adapter(os.path.join(run, 'global_lora_2'))
    assert all(torch.isfinite(t).all() for t in adapter.values())
    bad = [row for row in client_rows(run) if row['status'] == 'excluded']
    assert [(row['round'], row['client']) for row in bad] == [(1, poisoned[0])]
    assert bad[0]['detail'] and all('lora_' in name for name in bad[0]['detail'])
    assert poisoned[0] not in round_rows(run)[0]['aggregated'] and len(round_rows(run)[0]['aggregated']) == 1


def test_failing_clients_are_skipped_and_an_empty_round_keeps_the_global_state(
    tiny_model_dir, sample_jsonl, tmp_path, monkeypatch
):
    def everyone_fails_in_round_one(client, when):
        if when == 'before' and not client_failures.get('round_two'):
            client_failures[client] = client_failures.get(client, 0) + 1
            if sum(client_failures.values()) == 2:
                client_failures['round_two'] = True
            raise RuntimeError(f'simulated crash of client {client}')
        return False

    client_failures = {}
    poison(monkeypatch, everyone_fails_in_round_one)
    run = run_federated(tiny_model_dir, sample_jsonl, tmp_path)
    first_round, second_round = round_rows(run)
    assert first_round['status'] == 'failed' and first_round['aggregated'] == []
    assert second_round['status'] == 'ok' and len(second_round['aggregated']) == 2
    failed = [row for row in client_rows(run) if row['status'] == 'failed']
    assert len(failed) == 2 and all('simulated crash' in row['detail'][0] for row in failed)
    unchanged = load_adapter(os.path.join(run, 'global_lora_1'))
    assert all(float(t.abs().sum()) == 0.0 for k, t in unchanged.items() if 'lora_B' in k)  # LoRA init: B = 0


def test_client_failure_abort_stops_the_run(tiny_model_dir, sample_jsonl, tmp_path, monkeypatch):
    def crash(client, when):
        if when == 'before':
            raise RuntimeError('boom')
        return False

    poison(monkeypatch, crash)
    with pytest.raises(RuntimeError, match='boom'):
        run_federated(tiny_model_dir, sample_jsonl, tmp_path, '--client_failure', 'abort')
