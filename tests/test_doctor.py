"""``swift-ext doctor`` on the tiny Qwen2-VL: a healthy set-up exits 0 with the expected modules and counts, each
planted problem is reported with its exit status and message, ``--json`` holds the table's findings; plus the
numbers behind the plan (local steps, warm-up learning rates, bytes per checkpoint) against independent values.

Expected parameter counts come from the tiny model's config.json shapes; expected steps from the sample file's
client_id column; expected checkpoint bytes from files the run's own CheckpointStore writes.
"""

import json
import os
import re
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from packaging.specifiers import SpecifierSet

from swift_ext.cli import ext
from swift_ext.doctor import cli
from swift_ext.doctor.environment import check_version
from swift_ext.doctor.footprint import measure_footprint, per_element_bytes
from swift_ext.doctor.plan import free_space
from swift_ext.doctor.report import BLOCKING, OK, SKIPPED, WARNING, Section
from swift_ext.doctor.steps import learning_rates, local_steps
from swift_ext.template import resolve_pixel_limits_with_sources
from tests.conftest import read_jsonl, run_cli

LORA_RANK = 4
FLOAT32_BYTES = 4
PLAN = {  # 4 rounds, 2 of 4 clients each; a turn is ceil(n_k / 2) rows, one step per row
    'round': 4, 'client_num': 4, 'client_sample': 2, 'round_per_epoch': 2, 'save_every': 2,
    'per_device_train_batch_size': 1, 'gradient_accumulation_steps': 1, 'num_train_epochs': 1,
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- helpers


def doctor_argv(model_dir: str, dataset: str, output_dir: str, **overrides: object) -> List[str]:
    options = {
        'model': model_dir, 'model_type': 'qwen2_vl', 'template': 'qwen2_vl', 'dataset': dataset,
        'tuner_type': 'lora', 'lora_rank': LORA_RANK, 'output_dir': output_dir, **PLAN, **overrides,
    }  # fmt: skip
    return [token for name, value in options.items() for token in (f'--{name}', str(value))]


@pytest.fixture
def run_doctor(capsys, monkeypatch):
    """Run ``swift-ext doctor`` in this process (the model and libraries load once per test session); returns
    (exit status, {(section, check): [findings]}, the JSON report). The environment is restored afterwards."""
    saved_environment = dict(os.environ)

    def run(argv: List[str]) -> Tuple[int, Dict[Tuple[str, str], List[dict]], dict]:
        status = cli.main(['--json', *argv])
        report = json.loads(capsys.readouterr().out)
        assert report['exit_status'] == status
        findings: Dict[Tuple[str, str], List[dict]] = {}
        for section in report['sections']:
            for finding in section['findings']:
                findings.setdefault((section['title'], finding['check']), []).append(finding)
        return status, findings, report

    yield run
    os.environ.clear()
    os.environ.update(saved_environment)


def one(findings: Dict[Tuple[str, str], List[dict]], section: str, check: str) -> dict:
    (finding,) = findings[(section, check)]
    return finding


def statuses(report: dict) -> Counter:
    return Counter(f['status'] for s in report['sections'] for f in s['findings'])


def text_config(model_dir: str) -> dict:
    with open(os.path.join(model_dir, 'config.json'), encoding='utf-8') as f:
        config = json.load(f)
    return config.get('text_config', config)


def expected_lora_parameters(model_dir: str, rank: int) -> Dict[str, int]:
    """LoRA adds rank x (in + out) parameters per adapted Linear; shapes from config.json."""
    config = text_config(model_dir)
    hidden, inner, layers = config['hidden_size'], config['intermediate_size'], config['num_hidden_layers']
    head_dim = hidden // config['num_attention_heads']
    kv = config['num_key_value_heads'] * head_dim
    attention = rank * ((hidden + hidden) + 2 * (hidden + kv) + (hidden + hidden))  # q, k, v, o
    mlp = rank * (2 * (hidden + inner) + (inner + hidden))  # gate, up, down
    return {'LM attention': layers * attention, 'LM MLP': layers * mlp}


def collapse(text: str) -> str:
    return re.sub(r'\s+', ' ', text).strip()


# ------------------------------------------------------------------------------------------------- the router


def test_router_lists_sub_commands_and_rejects_unknown_ones(capsys):
    assert ext.main(['--help']) == 0
    assert 'doctor' in capsys.readouterr().out
    assert ext.main(['doctr']) == 2
    assert "unknown sub-command 'doctr'" in capsys.readouterr().err
    assert ext.main([]) == 2


def test_router_imports_nothing_heavy_before_dispatch():
    code = 'import sys, swift_ext.cli.ext; print(sorted({"torch", "swift", "transformers"} & set(sys.modules)))'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == '[]'


# ------------------------------------------------------------------------------------------- healthy set-up


def test_healthy_setup_exits_0_with_the_expected_scope_and_plan(tiny_model_dir, sample_jsonl, tmp_path, run_doctor):
    output_dir = tmp_path / 'out'
    # A fixed disk budget: the free space of a shared disk may change between the table run and the JSON run.
    argv = ['--disk_budget', str(10**12), *doctor_argv(tiny_model_dir, sample_jsonl, str(output_dir))]
    table = run_cli(['swift-ext', 'doctor', *argv])  # the console script; run_cli asserts exit status 0
    status, findings, report = run_doctor(argv)
    assert status == 0 and set(statuses(report)) == {OK}

    # --json holds the table's findings: each one's status, check and message is a row of the table
    flat_table = collapse(table)
    for section in report['sections']:
        assert section['title'] in table
        for finding in section['findings']:
            assert collapse(f'{finding["status"]} {finding["check"]} {finding["message"]}') in flat_table

    # LoRA scope: all-linear with --freeze_vit true adapts the 7 projections of each language-model layer only
    layers = text_config(tiny_model_dir)['num_hidden_layers']
    expected = expected_lora_parameters(tiny_model_dir, LORA_RANK)
    attention, mlp = one(findings, 'LoRA scope', 'LM attention'), one(findings, 'LoRA scope', 'LM MLP')
    assert attention['details']['trainable'] == expected['LM attention']
    assert mlp['details']['trainable'] == expected['LM MLP']
    assert len(attention['details']['adapted']) == 4 * layers and len(mlp['details']['adapted']) == 3 * layers
    assert '(k_proj, o_proj, q_proj, v_proj)' in attention['message']
    assert '(down_proj, gate_proj, up_proj)' in mlp['message']
    trainable = sum(expected.values())
    assert one(findings, 'LoRA scope', 'tuner')['details']['trainable'] == trainable
    assert f'{trainable:,} of' in one(findings, 'LoRA scope', 'tuner')['message']
    assert ('LoRA scope', 'vision tower') not in findings and ('LoRA scope', 'lm_head') not in findings
    assert 'is frozen' in one(findings, 'LoRA scope', 'freeze_vit')['message']

    # model and template: the real Qwen2-VL ids, found through transformers 5.x's layout
    assert one(findings, 'Model and template', 'vision tokens')['details']['image'] == 151655
    assert one(findings, 'Model and template', 'sample')['details']['position_ids_shape'][0] == 3

    # plan: rows per client from the client_id column; a turn is ceil(n_k / 2) one-row steps (FedMABench)
    rows = Counter(row['client_id'] for row in read_jsonl(sample_jsonl))
    clients = one(findings, 'Federated plan', 'clients')['details']
    assert clients['rows_per_client'] == [rows[client] for client in range(PLAN['client_num'])]
    steps = one(findings, 'Federated plan', 'local steps')['details']['steps_per_client']
    assert steps == {str(client): -(-rows[client] // 2) for client in map(int, steps)}

    # bytes: FedAvg moves the float32 state both ways and keeps no strategy state; 2 saves of float32 adapters
    wire = one(findings, 'Federated plan', 'wire')['details']
    assert wire['sent_per_client'] == wire['received_per_client'] == trainable * FLOAT32_BYTES
    disk = one(findings, 'Federated plan', 'disk')['details']
    assert disk['checkpoint'] == trainable * FLOAT32_BYTES
    peak = 2 * disk['checkpoint']  # the previous round's checkpoint and the one being written
    assert disk['needed'] == peak + 2 * trainable * FLOAT32_BYTES  # + global adapters after rounds 2 and 4

    data = one(findings, 'Data', 'dataset')['details']
    assert data['rows_read'] == data['rows_kept'] == sum(rows.values())
    assert not output_dir.exists()  # the doctor writes nothing, not even ms-swift's versioned run directory


# ------------------------------------------------------------------------------------------ planted problems


@pytest.fixture(scope='module')
def mismatched_model_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny model with config.json's image_token_id off by one (the tokenizer keeps 151655)."""
    directory = tmp_path_factory.mktemp('mismatched-model')
    for name in os.listdir(tiny_model_dir):
        if name != 'config.json':
            os.symlink(os.path.join(tiny_model_dir, name), directory / name)
    config = json.loads(Path(tiny_model_dir, 'config.json').read_text(encoding='utf-8'))
    config['image_token_id'] = 151654
    (directory / 'config.json').write_text(json.dumps(config), encoding='utf-8')
    return str(directory)


def test_token_id_mismatch_in_config_json_is_blocking(mismatched_model_dir, sample_jsonl, tmp_path, run_doctor):
    status, findings, _ = run_doctor(doctor_argv(mismatched_model_dir, sample_jsonl, str(tmp_path / 'out')))
    assert status == 2
    tokens = one(findings, 'Model and template', 'vision tokens')
    assert tokens['status'] == BLOCKING
    assert '<|image_pad|>: tokenizer 151655, config.image_token_id 151654' in tokens['message']
    assert 'config.json' in tokens['fix']
    assert one(findings, 'Model and template', 'template')['status'] == SKIPPED
    assert one(findings, 'LoRA scope', 'tuner')['status'] == OK  # the other sections still report


def test_missing_image_is_a_warning_naming_its_line(sample_jsonl, tiny_model_dir, tmp_path, run_doctor):
    rows = read_jsonl(sample_jsonl)
    missing = str(tmp_path / 'gone.png')
    rows[2]['images'][0] = missing
    dataset = tmp_path / 'episodes.jsonl'
    dataset.write_text(''.join(json.dumps(row) + '\n' for row in rows), encoding='utf-8')

    status, findings, _ = run_doctor(doctor_argv(tiny_model_dir, str(dataset), str(tmp_path / 'out')))
    assert status == 1  # --dataset_check_strategy warning (the default): the run trains on the rest
    data = one(findings, 'Data', 'dataset')
    assert data['status'] == WARNING
    assert f'{dataset}:3: image_unreadable: image file not found: {missing}' in data['message']
    assert data['details']['dropped_by_reason'] == {'image_unreadable': 1}
    kept = Counter(row['client_id'] for index, row in enumerate(rows) if index != 2)
    clients = one(findings, 'Federated plan', 'clients')['details']['rows_per_client']
    assert clients == [kept[client] for client in range(PLAN['client_num'])]


def test_lora_regex_hitting_lm_head_is_a_warning(tiny_model_dir, sample_jsonl, tmp_path, run_doctor):
    argv = doctor_argv(tiny_model_dir, sample_jsonl, str(tmp_path / 'out'), target_regex=r'.*(q_proj|lm_head)$')
    status, findings, _ = run_doctor(argv)
    assert status == 1
    (scope,) = findings[('LoRA scope', 'scope')]
    assert scope['status'] == WARNING and scope['details']['modules'] == ['lm_head']
    assert 'puts LoRA adapters on lm_head' in scope['message'] and 'anchor the regex' in scope['fix']
    config = text_config(tiny_model_dir)
    lm_head = one(findings, 'LoRA scope', 'lm_head')['details']['trainable']
    assert lm_head == LORA_RANK * (config['hidden_size'] + config['vocab_size'])


def test_too_little_disk_is_blocking(tiny_model_dir, sample_jsonl, tmp_path, run_doctor):
    argv = doctor_argv(tiny_model_dir, sample_jsonl, str(tmp_path / 'out'))
    status, findings, _ = run_doctor(['--disk_budget', '1000', *argv])
    assert status == 2
    disk = one(findings, 'Federated plan', 'disk')
    assert disk['status'] == BLOCKING and disk['details']['available'] == 1000
    assert 'of 1000 B in --disk_budget' in disk['message'] and '--output_dir' in disk['fix']


def test_one_step_scaffold_plan_is_a_warning(tiny_model_dir, sample_jsonl, tmp_path, run_doctor):
    argv = doctor_argv(
        tiny_model_dir, sample_jsonl, str(tmp_path / 'out'), fed_alg='scaffold', max_steps=1, warmup_ratio=0.03
    )
    status, findings, _ = run_doctor(argv)
    assert status == 1  # the run completes: a turn that did not move keeps its c_i (swift_ext.federated.client_node)
    rate = one(findings, 'Federated plan', 'learning rate')
    assert rate['status'] == WARNING and rate['details']['first_step_lr'] == {'1': 0.0}
    assert 'learning rate 0' in rate['message'] and 'keep their c_i' in rate['message']
    assert '--warmup_ratio 0' in rate['fix']
    sent = one(findings, 'Federated plan', 'wire')['details']['sent_per_client']
    trainable = sum(expected_lora_parameters(tiny_model_dir, LORA_RANK).values())
    assert sent == 2 * trainable * FLOAT32_BYTES  # the state and SCAFFOLD's c


@pytest.mark.parametrize(
    'option, expected',
    [
        (['--lora_rnak', '4'], '--lora_rnak (did you mean --lora_rank'),
        (['--lora_rank', 'abc'], "argument --lora_rank/--lora-rank: invalid int value: 'abc'"),
    ],
)
def test_bad_command_line_is_blocking_with_the_reason(option, expected, run_doctor):
    status, findings, _ = run_doctor(['--model', 'm', '--dataset', 'd.jsonl', *option])
    assert status == 2
    arguments = one(findings, 'Arguments', 'command line')
    assert arguments['status'] == BLOCKING and expected in arguments['message']


# ------------------------------------------------------------------------------------- numbers behind the plan


def test_local_steps_follow_transformers_epoch_arithmetic():
    args = types.SimpleNamespace(max_steps=-1, per_device_train_batch_size=2, gradient_accumulation_steps=2)
    # 7 rows -> 4 batches -> 2 updates per epoch; 1.5 epochs -> 3 steps
    assert local_steps(7, types.SimpleNamespace(**vars(args), num_train_epochs=1.5)) == 3
    # 1 row -> 1 batch -> max(ceil(1/2), 1) = 1 update
    assert local_steps(1, types.SimpleNamespace(**vars(args), num_train_epochs=1)) == 1
    assert local_steps(0, types.SimpleNamespace(**vars(args), num_train_epochs=1)) == 0
    assert local_steps(50, types.SimpleNamespace(**{**vars(args), 'max_steps': 5}, num_train_epochs=1)) == 5


@pytest.mark.parametrize('scheduler', ['linear', 'cosine'])
def test_warm_up_gives_a_one_step_turn_learning_rate_0(scheduler, tmp_path):
    from transformers import TrainingArguments

    # warm-up steps = ceil(0.03 x total): 1 for 1-33 steps; the warm-up rate of step i is lr x i / 1
    training_args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-4, warmup_steps=0.03, lr_scheduler_type=scheduler
    )
    assert learning_rates(training_args, 1) == [0.0]
    assert learning_rates(training_args, 2) == [0.0, pytest.approx(1e-4)]  # the first step after warm-up: full rate


def test_bytes_per_element_are_the_strategies_own():
    # (travelling state, strategy state, SCAFFOLD control): float32 state; FedAvgM momentum float64; FedOpt m and v
    # float64; SCAFFOLD c and c_i float32 (see each strategy's docstring)
    assert per_element_bytes('fedavg', 4) == (4, 0, 0)
    assert per_element_bytes('fedavgm', 4) == (4, 8, 0)
    assert per_element_bytes('fedadam', 4) == (4, 16, 0)
    assert per_element_bytes('scaffold', 4) == (4, 4, 4)


@pytest.mark.parametrize('fed_alg', ['fedavgm', 'fedadam', 'scaffold'])
def test_disk_estimate_matches_what_the_checkpoint_and_control_stores_write(fed_alg, tmp_path):
    from swift_ext.federated.checkpoint import CheckpointStore
    from swift_ext.federated.client_controls import ControlStore
    from swift_ext.strategies import ServerConfig, WeightedMean, build_strategy
    from swift_ext.strategies.scaffold import client_control_update

    client_num = 3
    state = {'a.lora_A': torch.zeros(4, 16), 'a.lora_B': torch.zeros(16, 4), 'b.lora_A': torch.zeros(4, 8)}
    strategy = build_strategy(fed_alg, ServerConfig(client_num=client_num))
    mean = WeightedMean()
    mean.add({name: t + 1 for name, t in state.items()}, weight=1.0)
    strategy.aggregate(state, mean)
    path = CheckpointStore(str(tmp_path / 'run')).save(1, state, strategy.state_dict(), {'fed_alg': fed_alg})
    controls = ControlStore(str(tmp_path / 'client_state'))
    if fed_alg == 'scaffold':  # every client trained twice: the counted c_i and a newer one
        zero = {name: torch.zeros_like(t) for name, t in state.items()}
        for client in range(client_num):
            for round_number in (1, 2):
                controls.save(client, round_number, client_control_update(zero, zero, state, mean.mean(), 1.0))

    def safetensors_bytes(root):
        return sum(
            os.path.getsize(os.path.join(directory, name))
            for directory, _, names in os.walk(root)
            for name in names
            if name != 'rng.safetensors' and name.endswith('.safetensors')
        )

    numel = sum(t.numel() for t in state.values())
    footprint = measure_footprint(fed_alg, client_num, numel, adapter_bytes=0)
    written, controls_written = safetensors_bytes(path), safetensors_bytes(controls.root)
    assert 0 <= written - footprint.checkpoint() <= 2 * 512  # each safetensors file adds a JSON header
    files = 2 * client_num if fed_alg == 'scaffold' else 0
    assert 0 <= controls_written - footprint.client_state(client_num) <= files * 512


def test_free_space_is_measured_on_the_nearest_existing_directory(tmp_path):
    available, measured = free_space(str(tmp_path / 'not' / 'yet' / 'made'))
    assert measured == str(tmp_path) and available > 0
    assert not (tmp_path / 'not').exists()


# ------------------------------------------------------------------------------------------------ environment


def test_versions_outside_the_declared_range_block_and_untested_ones_warn():
    section = Section('Environment')
    declared = SpecifierSet('<5.20,>=4.57')
    tested = ('5.19.0', '4.57.6')
    check_version(section, 'transformers', '5.20.0', tested, declared)
    check_version(section, 'transformers', '5.18.0', tested, declared)
    check_version(section, 'transformers', '4.57.6', tested, declared)
    check_version(section, 'torch', '2.14.1+cpu', ('2.14.1',), None)
    check_version(section, 'python', '3.11.9', ('3.11',), SpecifierSet('>=3.10'))
    check_version(section, 'peft', None, ('0.20.0',), None)
    assert [f.status for f in section.findings] == [BLOCKING, WARNING, OK, OK, OK, BLOCKING]
    assert 'pip install "transformers==5.19.0"' in section.findings[0].fix


def test_pixel_limit_sources_name_processor_env_library_and_default(monkeypatch):
    monkeypatch.delenv('MIN_PIXELS', raising=False)
    monkeypatch.setenv('MAX_PIXELS', '602112')
    processor = types.SimpleNamespace(patch_size=14, merge_size=2)
    qwen_vl_utils_0_0_11 = types.SimpleNamespace(IMAGE_FACTOR=28, MIN_PIXELS=3136, MAX_PIXELS=12845056)
    limits, sources = resolve_pixel_limits_with_sources(processor, qwen_vl_utils_0_0_11)
    assert (limits.image_factor, limits.min_pixels, limits.max_pixels) == (28, 3136, 602112)
    assert sources == {
        'image_factor': 'processor (patch_size 14 x merge_size 2)',
        'min_pixels': 'library (qwen_vl_utils MIN_PIXELS)',
        'max_pixels': 'env var MAX_PIXELS',
    }
    monkeypatch.delenv('MAX_PIXELS')
    qwen_vl_utils_0_0_14 = types.SimpleNamespace(IMAGE_MIN_TOKEN_NUM=4)
    limits, sources = resolve_pixel_limits_with_sources(types.SimpleNamespace(), qwen_vl_utils_0_0_14)
    assert (limits.min_pixels, limits.max_pixels) == (4 * 28 * 28, 16384 * 28 * 28)
    assert sources == {
        'image_factor': 'default (patch_size 14 x merge_size 2)',
        'min_pixels': 'library (qwen_vl_utils IMAGE_MIN_TOKEN_NUM 4 x 28^2)',
        'max_pixels': 'default (16384 x 28^2)',
    }
