"""Benchmark (not a test): what does federated ``swift sft`` cost on top of plain ``swift sft``?

Runs, in the same invocation and on the same model/data, plain ``swift sft`` for N = rounds x clients x steps
optimizer steps and federated FedAvg for ``rounds`` rounds of ``clients`` clients x ``steps`` local steps (equal total
steps), both through the real ``swift`` CLI. Prints:

- wall-time ratio federated / plain for the whole command and for the training phase (plain: ms-swift's
  ``train_runtime``; federated: the sum of round times from ``fed_log.jsonl``);
- per-client overhead: a client's turn minus its steps at plain ``swift sft``'s per-step time (trainer build,
  data-loader start, state copies), and the part of it spent outside ``trainer.train()``.

Usage: ``python benchmarks/bench_fed_overhead.py --model build/tiny-qwen2-vl --dataset data/sample/...jsonl``
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(command, output_dir):
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, 'HF_HUB_OFFLINE': '1', 'MODELSCOPE_OFFLINE': '1'},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f'{" ".join(command)} failed:\n{(result.stdout + result.stderr)[-4000:]}')
    return seconds, glob.glob(os.path.join(output_dir, 'v*'))[0]


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--steps', type=int, default=4)
    args = parser.parse_args()
    total_steps = args.rounds * args.clients * args.steps
    work = tempfile.mkdtemp(prefix='bench_fed_')
    common = [
        '--model',
        args.model,
        '--model_type',
        'qwen2_vl',
        '--template',
        'qwen2_vl',
        '--dataset',
        args.dataset,
        '--tuner_type',
        'lora',
        '--gradient_accumulation_steps',
        '1',
        '--check_model',
        'false',
        '--report_to',
        'none',
        '--logging_steps',
        '1000',
        '--save_strategy',
        'no',
    ]

    plain_out = os.path.join(work, 'plain')
    plain_wall, plain_run = run(
        ['swift', 'sft', *common, '--max_steps', str(total_steps), '--output_dir', plain_out], plain_out
    )
    plain_log = [row for row in read_jsonl(os.path.join(plain_run, 'logging.jsonl')) if 'train_runtime' in row]
    plain_train = float(plain_log[-1]['train_runtime'])
    step_seconds = plain_train / total_steps

    fed_out = os.path.join(work, 'fed')
    fed_wall, fed_run = run(
        [
            'swift',
            'sft',
            *common,
            '--fed_alg',
            'fedavg',
            '--round',
            str(args.rounds),
            '--client_num',
            str(args.clients),
            '--client_sample',
            str(args.clients),
            '--max_steps',
            str(args.steps),
            '--save_every',
            str(args.rounds),
            '--output_dir',
            fed_out,
        ],
        fed_out,
    )
    rows = read_jsonl(os.path.join(fed_run, 'fed_log.jsonl'))
    clients = [row for row in rows if row['type'] == 'client']
    fed_train = sum(row['seconds'] for row in rows if row['type'] == 'round')
    overhead = [row['seconds'] - row['steps'] * step_seconds for row in clients]
    outside = [row['seconds'] - row['train_seconds'] for row in clients]

    print(
        f'equal total optimizer steps: {total_steps} ({args.rounds} rounds x {args.clients} clients x '
        f'{args.steps} steps)'
    )
    print(f'plain swift sft : wall {plain_wall:7.1f} s, training {plain_train:7.2f} s ({step_seconds:.3f} s/step)')
    print(f'federated fedavg: wall {fed_wall:7.1f} s, rounds   {fed_train:7.2f} s')
    print(f'ratio federated/plain: wall {fed_wall / plain_wall:.2f}, training phase {fed_train / plain_train:.2f}')
    print(
        f'per-client overhead beyond its optimizer steps: mean {statistics.mean(overhead):.3f} s, '
        f'max {max(overhead):.3f} s; outside trainer.train(): mean {statistics.mean(outside):.3f} s'
    )


if __name__ == '__main__':
    main()
