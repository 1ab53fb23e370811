"""ms-swift 2.x (FedMABench) argument names -> ms-swift 4.x."""

import logging

import pytest

from swift_ext.legacy_args import (
    split_options,
    translate_legacy_argv,
    unknown_argument_hint,
    unknown_flags,
    uses_legacy_names,
)


def as_dict(argv):
    return {name: values for name, values in split_options(argv)}


def test_fedmabench_names_are_translated():
    argv = translate_legacy_argv(
        [
            '--sft_type',
            'lora',
            '--model_id_or_path',
            '/m',
            '--model_type',
            'qwen2-vl-2b-instruct',
            '--check_model_is_latest',
            'False',
            '--dataset_test_ratio',
            '0',
            '--batch_size',
            '1',
            '--eval_batch_size',
            '2',
            '--preprocess_num_proc',
            '4',
            '--dtype',
            'AUTO',
            '--lora_rank',
            '8',
            '--round',
            '3',
        ]
    )
    assert as_dict(argv) == {
        '--tuner_type': ['lora'],
        '--model': ['/m'],
        '--model_type': ['qwen2_vl'],
        '--template': ['qwen2_vl'],
        '--check_model': ['False'],
        '--split_dataset_ratio': ['0'],
        '--per_device_train_batch_size': ['1'],
        '--per_device_eval_batch_size': ['2'],
        '--dataset_num_proc': ['4'],
        '--lora_rank': ['8'],
        '--round': ['3'],
    }


@pytest.mark.parametrize(
    'legacy, model_type',
    [('qwen2_5-vl-7b-instruct', 'qwen2_5_vl'), ('qwen2-vl-7b-instruct', 'qwen2_vl'), ('qwen2_vl', 'qwen2_vl')],
)
def test_model_types(legacy, model_type):
    assert as_dict(translate_legacy_argv(['--model_type', legacy]))['--model_type'] == [model_type]


def test_an_explicit_template_wins():
    argv = as_dict(translate_legacy_argv(['--template', 'custom', '--model_type', 'qwen2-vl-2b-instruct']))
    assert argv['--template'] == ['custom'] and argv['--model_type'] == ['qwen2_vl']


@pytest.mark.parametrize('dtype, expected', [('bf16', ['bfloat16']), ('fp32', ['float32']), ('AUTO', None)])
def test_dtypes(dtype, expected):
    assert as_dict(translate_legacy_argv(['--dtype', dtype])).get('--torch_dtype') == expected


def test_unknown_dtype_names_the_fix():
    with pytest.raises(ValueError, match='--torch_dtype'):
        translate_legacy_argv(['--dtype', 'int8'])


def test_train_dataset_sample_becomes_dataset_syntax():
    argv = as_dict(translate_legacy_argv(['--dataset', 'a.jsonl', 'b.jsonl', '--train_dataset_sample', '100']))
    assert argv == {'--dataset': ['a.jsonl#100', 'b.jsonl#100']}
    assert as_dict(translate_legacy_argv(['--dataset', 'a.jsonl', '--train_dataset_sample', '-1'])) == {
        '--dataset': ['a.jsonl']
    }


def test_equals_form_and_negative_values():
    assert as_dict(translate_legacy_argv(['--sft_type=lora', '--max_steps', '-1'])) == {
        '--tuner_type': ['lora'],
        '--max_steps': ['-1'],
    }


def test_each_translation_is_logged_once(caplog):
    with caplog.at_level(logging.WARNING):
        translate_legacy_argv(['--sft_type', 'lora', '--batch_size', '1', '--sft_type', 'lora'])
    messages = [record.getMessage() for record in caplog.records]
    assert sum('--sft_type -> --tuner_type' in message for message in messages) == 1
    assert sum('--batch_size -> --per_device_train_batch_size' in message for message in messages) == 1


def test_unknown_argument_hint_suggests_close_names():
    known = ['--lora_rank', '--lora_alpha', '--gradient_checkpointing']
    unknown = unknown_flags(['--lora_rnak', '8', '--zzz', '--lora-alpha', '1', '--no_gradient_checkpointing'], known)
    assert unknown == ['--lora_rnak', '--zzz']
    message = unknown_argument_hint(unknown, known)
    assert message.startswith('unknown arguments --lora_rnak (did you mean --lora_rank') and '\n' not in message
    assert ', --zzz; ' in message  # no suggestion for it


def test_translations_are_logged_in_one_line_unless_asked_not_to(caplog):
    with caplog.at_level(logging.WARNING):
        translate_legacy_argv(['--sft_type', 'lora', '--batch_size', '1'])
        translate_legacy_argv(['--sft_type', 'lora'], log=False)
    assert [record.getMessage() for record in caplog.records] == [
        'ms-swift 2.x arguments translated by swift_ext: --sft_type -> --tuner_type; '
        '--batch_size -> --per_device_train_batch_size'
    ]


def test_a_plain_run_drops_what_stock_ms_swift_lacks(caplog):
    argv = ['--sft_type', 'lora', '--check_dataset_strategy', 'warning', '--lora_rank', '8']
    with caplog.at_level(logging.WARNING):
        assert as_dict(translate_legacy_argv(argv, plain_run=True)) == {'--tuner_type': ['lora'], '--lora_rank': ['8']}
    assert '--check_dataset_strategy warning dropped: stock ms-swift 4.x has no dataset check' in caplog.text
    assert as_dict(translate_legacy_argv(argv))['--dataset_check_strategy'] == ['warning']  # federated runs keep it


@pytest.mark.parametrize(
    'argv, legacy',
    [
        (['--model_id_or_path', 'm'], True),
        (['--model_type', 'qwen2-vl-7b-instruct'], True),
        (['--model_type', 'qwen2_vl', '--model', 'm'], False),  # 4.x names only: stock ms-swift, untouched
        (['--dtype', 'bf16'], True),
        (['--lora_rank', '8', '--dataset', 'd.jsonl'], False),
    ],
)
def test_uses_legacy_names(argv, legacy):
    assert uses_legacy_names(argv) is legacy
