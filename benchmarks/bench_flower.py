"""Benchmark (not a test): what does running the clients on Flower cost over running them in-process?

Runs the same federated command twice in one invocation, through the real ``swift-fed`` CLI: ``--fed_engine
in_process`` and ``--fed_engine flower`` (the loopback launcher: SuperLink, one SuperNode and training worker per
client, TLS and SuperNode authentication on). Every client trains every round, one client per node, so in each
Flower round every client-round goes through the whole path (push to the SuperLink, the SuperNode's poll, a fresh
ClientApp process, the worker, the reply, the server's pull). Prints:

- wall time of both commands and their ratio (Flower's includes starting the federation and every node's model);
- per round: the round's wall time, the slowest client's turn on its node (trainer build + training, ``seconds``
  in ``fed_log.jsonl``) and the difference, i.e. the seconds a client-round spends beyond training on Flower
  (mean over rounds after round 1); in-process, the same figure is a turn minus its ``trainer.train()`` time;
- the adapters' largest difference between the two engines (0 on one machine).

Usage: ``python benchmarks/bench_flower.py --model build/tiny-qwen2-vl --dataset data/sample/...jsonl``
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
        env={**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'MODELSCOPE_OFFLINE': '1'},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f'{" ".join(command)} failed:\n{(result.stdout + result.stderr)[-4000:]}')
    return seconds, glob.glob(os.path.join(output_dir, 'v*'))[0]


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def rounds_and_clients(run_dir):
    rows = read_jsonl(os.path.join(run_dir, 'fed_log.jsonl'))
    return [row for row in rows if row['type'] == 'round'], [row for row in rows if row['type'] == 'client']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--steps', type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='bench_flower_')
    common = [
        'sft', '--model', args.model, '--model_type', 'qwen2_vl', '--template', 'qwen2_vl', '--dataset', args.dataset,
        '--tuner_type', 'lora', '--lora_rank', '8', '--gradient_accumulation_steps', '1', '--check_model', 'false',
        '--report_to', 'none', '--logging_steps', '1000', '--dataloader_num_workers', '0',
        '--fed_alg', 'fedavg', '--round', str(args.rounds), '--client_num', str(args.clients),
        '--client_sample', str(args.clients), '--max_steps', str(args.steps), '--save_every', str(args.rounds),
    ]  # fmt: skip
    walls, runs = {}, {}
    for engine, extra in (
        ('in_process', []),
        ('flower', ['--fed_engine', 'flower', '--supernodes', str(args.clients), '--client_timeout', '1800']),
    ):
        output = os.path.join(work, engine)
        walls[engine], runs[engine] = run(['swift-fed', *common, *extra, '--output_dir', output], output)

    print(f'{args.rounds} rounds x {args.clients} clients x {args.steps} steps, one client per SuperNode')
    print(
        f'wall: in-process {walls["in_process"]:.1f} s, Flower deployment {walls["flower"]:.1f} s '
        f'(ratio {walls["flower"] / walls["in_process"]:.2f}; Flower includes starting the federation)'
    )
    rounds, clients = rounds_and_clients(runs['flower'])
    beyond = []
    for row in rounds:
        slowest = max(c['seconds'] for c in clients if c['round'] == row['round'])
        beyond.append(row['seconds'] - slowest)
        print(
            f'  Flower round {row["round"]}: {row["seconds"]:6.2f} s, slowest turn {slowest:6.2f} s, '
            f'beyond training {beyond[-1]:6.2f} s'
        )
    in_rounds, in_clients = rounds_and_clients(runs['in_process'])
    print(
        f'rounds: in-process {sum(r["seconds"] for r in in_rounds):.1f} s (clients one after another), '
        f'Flower {sum(r["seconds"] for r in rounds):.1f} s (clients in parallel on {os.cpu_count()} CPUs)'
    )
    later = beyond[1:] or beyond
    print(
        f'seconds per client-round beyond training, after round 1: Flower mean {statistics.mean(later):.2f} s '
        f'(max {max(later):.2f}); in-process mean '
        f'{statistics.mean(c["seconds"] - c["train_seconds"] for c in in_clients if c["round"] > 1):.2f} s'
    )

    from safetensors.torch import load_file

    adapters = [
        load_file(os.path.join(runs[engine], f'global_lora_{args.rounds}', 'adapter_model.safetensors'))
        for engine in ('in_process', 'flower')
    ]
    worst = max((adapters[0][k] - adapters[1][k]).abs().max().item() for k in adapters[0])
    print(f"largest |difference| between the engines' final adapters: {worst:g}")


if __name__ == '__main__':
    main()
