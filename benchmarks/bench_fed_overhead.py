"""Benchmark (not a test): what does federated ``swift sft`` cost on top of plain ``swift sft``?

Both commands run through the real ``swift`` CLI on the same model, data, seed and flags, with equal total optimizer
steps: plain ``swift sft`` for N = rounds x clients x steps steps, federated FedAvg for ``rounds`` rounds in which
all ``clients`` clients train ``steps`` local steps each. By default ``steps`` is the rows per client (batch size 1),
so both sides train on every row exactly ``rounds`` times: the same work in a different order. With fewer steps the
two sides would train on different rows, whose costs differ by their images and lengths. The two sides alternate
(plain, federated, plain, ...) ``--repeats`` times; every figure is the median [min-max] over the repeats, ratios
are federated / plain medians.

Per run it measures, from outside the process tree (``os.wait4``) and from its output as it streams:

- whole command: wall time from launch to exit, CPU time (user + sys of the process tree; on a shared machine it
  moves far less than wall time), peak resident memory (largest process of the tree);
- startup: launch to the first optimizer step's log line (plain: its step 1; federated: the first client's step 1);
- training phase: plain, ms-swift's ``train_runtime``; federated, the round loop's wall time from its summary line
  (every client's turn, aggregation, run log, checkpoint and adapter saves, the loss plot), next to the sum of the
  rounds in ``fed_log.jsonl`` (which stops before the round-end saves);
- tokens/s: input tokens trained on (ms-swift's ``num_input_tokens_seen``) per second of training phase;
- federated, per client-round: the CPU time beyond plain's (paired runs, whole commands, divided by the client-rounds);
  from ``fed_log.jsonl``, its wall time beyond its steps at plain's seconds per step (only meaningful on a quiet
  machine) and its time outside ``trainer.train()`` (trainer construction, state copies); the round-end work per
  round; the size on disk of one round's checkpoint and of the global adapter (or model);
- with ``--device cuda``: peak GPU memory (ms-swift's ``memory(GiB)``, torch's peak reserved memory).

The model is ``--model`` or the random-weight preset ``--size``/``--family`` of ``data_tools.tiny_model``, built into
``build/{size}-{family}`` on first use. The dataset needs a ``client_id`` column with ``--clients`` clients (the
bundled sample: 4).

Usage: ``python benchmarks/bench_fed_overhead.py --size small --dataset data/sample/episode-wise-conversations.jsonl``
(``make bench``; ``make bench SIZE=tiny``), ``--tuner_type full`` for the memory of full fine-tuning, and on a GPU
machine ``--size 2b --device cuda --torch_dtype bfloat16``.
"""

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Output markers, searched in the merged stdout/stderr as it streams: ms-swift logs step 1 of every trainer
# (logging_first_step; the federated console shows it with LOG_LEVEL set, see ``child_env``), and the federated
# summary line states the round loop's wall time (``swift_ext.federated.console.summary_lines``).
FIRST_STEP = b"'global_step/max_steps': '1/"
ROUND_LOOP_DONE = re.compile(rb'done: (\d+) of (\d+) rounds in ([0-9.]+) s')


@dataclass
class ProcessRun:
    """One command as seen from outside: wall and CPU seconds, peak RSS, and when each output marker first appeared."""

    wall: float
    cpu: float
    peak_rss_mib: float
    first_seen: Dict[str, float]


@dataclass
class SideRun:
    """One run of one side with the figures read from its run directory."""

    side: str
    wall: float
    cpu: float
    peak_rss_mib: float
    startup: float
    train: float
    tokens: int
    gpu_memory_gib: Optional[float] = None
    fed: Dict[str, float] = field(default_factory=dict)


def run_process(argv: Sequence[str], env: Dict[str, str], log_path: str, markers: Dict[str, bytes]) -> ProcessRun:
    """Run ``argv`` to completion, streaming its merged output into ``log_path``; exit with the output's tail if it
    fails. ``markers``: name -> bytes whose first appearance time (seconds after launch) is recorded."""
    keep = max(len(marker) for marker in markers) - 1
    first_seen: Dict[str, float] = {}
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    tail = b''
    with open(log_path, 'wb') as log:
        while chunk := os.read(process.stdout.fileno(), 1 << 16):
            now = time.perf_counter() - start
            log.write(chunk)
            window = tail + chunk
            for name, marker in markers.items():
                if marker in window:
                    first_seen.setdefault(name, now)
            tail = window[-keep:]
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode != 0:
        with open(log_path, 'rb') as f:
            output = f.read()[-4000:].decode(errors='replace')
        sys.exit(f'{" ".join(argv)}\nexited {process.returncode} (log: {log_path}):\n{output}')
    return ProcessRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, first_seen)


def read_jsonl(path: str) -> List[dict]:
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def only_run_dir(output_dir: str) -> str:
    runs = glob.glob(os.path.join(output_dir, 'v*-*'))
    if len(runs) != 1:
        sys.exit(f'expected one ms-swift run directory under {output_dir}, found {runs}')
    return runs[0]


def dir_mib(path: str) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file()) / 2**20


def trainer_summaries(run_dir: str) -> List[dict]:
    """ms-swift's end-of-training rows in logging.jsonl: one per trainer (federated: one per client-round)."""
    return [row for row in read_jsonl(os.path.join(run_dir, 'logging.jsonl')) if 'train_runtime' in row]


def gpu_memory(rows: List[dict]) -> Optional[float]:
    values = [row['memory(GiB)'] for row in rows if 'memory(GiB)' in row]
    return max(values) if values else None


def run_plain(args: argparse.Namespace, common: List[str], env: Dict[str, str], work: str, index: int) -> SideRun:
    output_dir = os.path.join(work, f'plain_{index}')
    total_steps = args.rounds * args.clients * args.steps
    argv = [str(BIN / 'swift'), 'sft', *common, '--max_steps', str(total_steps), '--output_dir', output_dir]
    process = run_process(argv, env, output_dir + '.log', {'first_step': FIRST_STEP})
    run_dir = only_run_dir(output_dir)
    (summary,) = trainer_summaries(run_dir)
    return SideRun(
        side='plain',
        wall=process.wall,
        cpu=process.cpu,
        peak_rss_mib=process.peak_rss_mib,
        startup=process.first_seen['first_step'],
        train=float(summary['train_runtime']),
        tokens=int(summary['num_input_tokens_seen']),
        gpu_memory_gib=gpu_memory(read_jsonl(os.path.join(run_dir, 'logging.jsonl'))),
    )


def run_federated(args: argparse.Namespace, common: List[str], env: Dict[str, str], work: str, index: int) -> SideRun:
    output_dir = os.path.join(work, f'fed_{index}')
    # fmt: off
    argv = [
        str(BIN / 'swift'), 'sft', *common, '--fed_alg', 'fedavg', '--round', str(args.rounds),
        '--client_num', str(args.clients), '--client_sample', str(args.clients), '--max_steps', str(args.steps),
        '--save_every', str(args.save_every), '--output_dir', output_dir,
    ]
    # fmt: on
    process = run_process(argv, env, output_dir + '.log', {'first_step': FIRST_STEP})
    with open(output_dir + '.log', 'rb') as f:
        done = ROUND_LOOP_DONE.search(f.read())
    if 'first_step' not in process.first_seen or done is None:
        sys.exit(f'{output_dir}.log: no step-1 row or no "done:" line; update the markers in {__file__}.')
    run_dir = only_run_dir(output_dir)
    rows = read_jsonl(os.path.join(run_dir, 'fed_log.jsonl'))
    clients = [row for row in rows if row['type'] == 'client']
    rounds = [row for row in rows if row['type'] == 'round']
    checkpoint = os.path.realpath(os.path.join(run_dir, 'fed_checkpoint', 'round_' + str(args.rounds)))
    saved = sorted(glob.glob(os.path.join(run_dir, 'global_*_*')))
    return SideRun(
        side='federated',
        wall=process.wall,
        cpu=process.cpu,
        peak_rss_mib=process.peak_rss_mib,
        startup=process.first_seen['first_step'],
        train=float(done.group(3)),
        tokens=sum(int(row['num_input_tokens_seen']) for row in trainer_summaries(run_dir)),
        gpu_memory_gib=gpu_memory(read_jsonl(os.path.join(run_dir, 'logging.jsonl'))),
        fed={
            'rounds_logged': sum(row['seconds'] for row in rounds),
            'client_seconds': sum(row['seconds'] for row in clients),
            'client_train_seconds': sum(row['train_seconds'] for row in clients),
            'client_steps': sum(row['steps'] for row in clients),
            'client_turns': len(clients),
            'checkpoint_mib': dir_mib(checkpoint),
            'saved_model_mib': dir_mib(saved[-1]) if saved else 0.0,
        },
    )


def spread(values: Sequence[float], fmt: str = '.1f') -> str:
    return f'{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]'


def report(args: argparse.Namespace, plain: List[SideRun], fed: List[SideRun], parameters: Optional[int]) -> None:
    total_steps = args.rounds * args.clients * args.steps
    size = f'{parameters / 1e6:.1f}M parameters' if parameters else 'parameters unknown'
    print(
        f'\nfederated vs plain swift sft: {args.model} ({size}), {args.tuner_type}, {args.device}'
        f'{", " + args.torch_dtype if args.torch_dtype else ""}, torch threads {args.threads or "default"}, '
        f'{len(plain)} runs per side, alternated'
    )
    print(f'equal total optimizer steps: {total_steps} ({args.rounds} rounds x {args.clients} clients x {args.steps})')
    print(f'{"median [min-max]":38}{"plain":>24}{"federated":>24}{"fed/plain":>11}')
    rows = [
        ('whole command wall (s)', 'wall', '.1f'),
        ('whole command CPU time (s)', 'cpu', '.1f'),
        ('startup: launch to first step (s)', 'startup', '.1f'),
        ('training phase wall (s)', 'train', '.1f'),
        ('peak RSS (MiB)', 'peak_rss_mib', '.0f'),
    ]
    if any(run.gpu_memory_gib for run in plain + fed):
        rows.append(('peak GPU memory reserved (GiB)', 'gpu_memory_gib', '.2f'))
    for label, key, fmt in rows:
        p, f = [getattr(run, key) for run in plain], [getattr(run, key) for run in fed]
        print(f'{label:38}{spread(p, fmt):>24}{spread(f, fmt):>24}{statistics.median(f) / statistics.median(p):>11.3f}')
    p_tps, f_tps = [run.tokens / run.train for run in plain], [run.tokens / run.train for run in fed]
    ratio = statistics.median(f_tps) / statistics.median(p_tps)
    print(f'{"tokens/s (training phase)":38}{spread(p_tps):>24}{spread(f_tps):>24}{ratio:>11.3f}')
    p_tokens, f_tokens = plain[0].tokens, fed[0].tokens
    print(f'{"input tokens trained on":38}{p_tokens:>24}{f_tokens:>24}{f_tokens / p_tokens:>11.3f}')

    step_seconds = statistics.median(run.train for run in plain) / total_steps
    turns = [run.fed['client_turns'] for run in fed]
    beyond = [(run.fed['client_seconds'] - run.fed['client_steps'] * step_seconds) / n for run, n in zip(fed, turns)]
    outside = [(run.fed['client_seconds'] - run.fed['client_train_seconds']) / n for run, n in zip(fed, turns)]
    round_end = [(run.train - run.fed['rounds_logged']) / args.rounds for run in fed]
    between = [(run.fed['rounds_logged'] - run.fed['client_seconds']) / args.rounds for run in fed]
    round_share = [100 * (run.train - run.fed['rounds_logged']) / run.train for run in fed]
    cpu_beyond = [(f.cpu - p.cpu) / n for f, p, n in zip(fed, plain, turns)]
    print(f'\nplain: {step_seconds:.3f} s per optimizer step (median train_runtime / {total_steps})')
    print(f'federated CPU time beyond plain per client-round (paired runs): {spread(cpu_beyond, ".3f")} s')
    print(f'federated, per client-round: {spread(beyond, ".3f")} s beyond its steps at that rate, of which')
    print(f'  {spread(outside, ".3f")} s outside trainer.train() (trainer construction, state copy out)')
    print(f'federated, per round: {spread(between, ".3f")} s between clients (state loads, aggregation, log),')
    print(f'  {spread(round_end, ".3f")} s round-end saves = {spread(round_share, ".2f")} % of the round loop')
    checkpoint, model = fed[-1].fed['checkpoint_mib'], fed[-1].fed['saved_model_mib']
    print(f'on disk: checkpoint per round {checkpoint:.2f} MiB, global adapter/model {model:.2f} MiB')


def model_dir(args: argparse.Namespace, env: Dict[str, str]) -> str:
    """``--model``, or the preset's checkpoint under build/, built on first use."""
    if args.model:
        return args.model
    path = ROOT / 'build' / f'{args.size}-{args.family.replace("_", "-")}'
    if not (path / 'config.json').is_file():
        dtype = ['--dtype', args.torch_dtype] if args.torch_dtype else []
        argv = [sys.executable, '-m', 'data_tools.tiny_model', '--size', args.size, '--family', args.family, *dtype]
        print(f'building {path}: {" ".join(argv[1:])}', flush=True)
        subprocess.run([*argv, '--output', str(path)], env=env, cwd=ROOT, check=True)
    return str(path)


def child_env(args: argparse.Namespace) -> Dict[str, str]:
    env = {
        **os.environ,
        'HF_HUB_OFFLINE': '1',
        'HF_DATASETS_OFFLINE': '1',
        'MODELSCOPE_OFFLINE': '1',
        'TOKENIZERS_PARALLELISM': 'false',
        'PYTHONUNBUFFERED': '1',
        'LOG_LEVEL': 'INFO',  # ms-swift's default level; set, the federated console keeps ms-swift's step rows
    }
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    return env


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='small', help='model preset of data_tools.tiny_model (tiny, small, 2b, ...)')
    parser.add_argument('--family', default='qwen2_vl', choices=('qwen2_vl', 'qwen2_5_vl'))
    parser.add_argument('--model', help='an existing checkpoint instead of the preset (its family still from --family)')
    parser.add_argument('--dataset', default=str(ROOT / 'data/sample/episode-wise-conversations.jsonl'))
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--clients', type=int, default=4, help='clients in the data (client_id), all train each round')
    parser.add_argument(
        '--steps', type=int, help='local optimizer steps per client per round (default: its rows, one pass)'
    )
    parser.add_argument('--repeats', type=int, default=3, help='runs of each side, alternated')
    parser.add_argument('--save_every', type=int, help='federated --save_every (default: --rounds, one adapter save)')
    parser.add_argument('--tuner_type', default='lora', choices=('lora', 'full'))
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--torch_dtype', choices=('float32', 'bfloat16', 'float16'), help='passed to both commands')
    parser.add_argument('--threads', type=int, help='OMP_NUM_THREADS of the commands (default: torch decides)')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--work_dir', help='keep the runs in this directory (default: a temporary one, removed after)')
    parser.add_argument('--json', help='also write every run and the settings to this JSON file')
    args = parser.parse_args(argv)
    args.save_every = args.save_every or args.rounds
    if not os.path.isfile(args.dataset):
        parser.error(f'--dataset {args.dataset} not found: run `make sample-data` or pass a conversations .jsonl.')
    if args.steps is None:
        args.steps = rows_per_client(parser, args.dataset, args.clients)
    return args


def rows_per_client(parser: argparse.ArgumentParser, dataset: str, clients: int) -> int:
    """The common number of rows of the ``clients`` clients of ``dataset`` (its ``client_id`` column)."""
    counts = Counter(row.get('client_id') for row in read_jsonl(dataset))
    if set(counts) != set(range(clients)) or len(set(counts.values())) != 1:
        parser.error(f'{dataset}: rows per client_id {dict(counts)}; pass --steps (and --clients {len(counts)}).')
    return next(iter(counts.values()))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    env = child_env(args)
    args.model = model_dir(args, env)
    parameters = None
    info_path = os.path.join(args.model, 'build_info.json')
    if os.path.isfile(info_path):
        with open(info_path, encoding='utf-8') as f:
            parameters = json.load(f)['parameters']
    # fmt: off
    common = [
        '--model', args.model, '--model_type', args.family, '--template', args.family, '--dataset', args.dataset,
        '--tuner_type', args.tuner_type, '--gradient_accumulation_steps', '1', '--seed', str(args.seed),
        '--check_model', 'false', '--report_to', 'none', '--logging_steps', '1000', '--save_strategy', 'no',
        '--include_num_input_tokens_seen', 'true',
        *(['--torch_dtype', args.torch_dtype] if args.torch_dtype else []),
    ]
    # fmt: on
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    with nullcontext(args.work_dir) if args.work_dir else tempfile.TemporaryDirectory(prefix='bench_fed_') as work:
        plain, fed = [], []
        for index in range(args.repeats):
            for side, runner, runs in (('plain', run_plain, plain), ('federated', run_federated, fed)):
                print(f'run {index + 1}/{args.repeats}: {side} ...', end=' ', flush=True)
                runs.append(runner(args, common, env, work, index))
                print(f'{runs[-1].wall:.1f} s', flush=True)
        report(args, plain, fed, parameters)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'settings': vars(args), 'runs': [asdict(run) for run in plain + fed]}, f, indent=2)


if __name__ == '__main__':
    main()
