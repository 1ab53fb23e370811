"""Benchmark (not a test): throughput and peak memory of ``scripts/convert_to_conversations.py``.

Writes a step-wise file of ``--episodes`` x ``--steps`` FedMABench records (default 10,000 x 10 = 100k steps, with
realistic field sizes) and the matching episode-wise file, then runs the converter CLI on each in a child process
(so the figures are the converter's alone) and prints rows/s, records/s and the child's peak RSS.

Usage: ``python benchmarks/bench_converter.py [--episodes 10000 --steps 10 --prompt_format fedmabench --history]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_tools.schema import PER_STEP_FIELDS

REPO = Path(__file__).resolve().parents[1]
ACTIONS = [
    ('{"action_type": "click", "x": 540, "y": 1200}', 'Click on button with the text "Wi-Fi"'),
    ('{"action_type": "scroll", "direction": "down"}', 'Scroll down'),
    (
        '{"action_type": "input_text", "text": "natalie.larson1998@gmail.com"}',
        'Type text: natalie.larson1998@gmail.com',
    ),
]


def write_inputs(folder: Path, episodes: int, steps: int) -> tuple:
    step_path, episode_path = folder / 'step-wise-all.jsonl', folder / 'episode-wise-all.jsonl'
    with open(step_path, 'w') as step_f, open(episode_path, 'w') as episode_f:
        for e in range(episodes):
            rows = [
                {
                    'episode_id': e,
                    'step': s,
                    'instruction': f'Open the PocketBook app and share book number {e} with a friend over Gmail',
                    'sub_instruction': 'Click on the more options icon at the top right corner of the screen.',
                    'act_origin': ACTIONS[s % 3][0],
                    'act_convert': ACTIONS[s % 3][1],
                    'img': f'episodes/{e}/{s:02d}.png',
                    'screen_size': [1080, 2400],
                    'app': f'app{e % 40}',
                    'category': f'cat{e % 7}',
                }
                for s in range(steps)
            ]
            step_f.writelines(json.dumps(r) + '\n' for r in rows)
            episode = {k: v for k, v in rows[0].items() if k not in PER_STEP_FIELDS and k != 'step'}
            episode.update({PER_STEP_FIELDS[k]: [r[k] for r in rows] for k in rows[0] if k in PER_STEP_FIELDS})
            episode_f.write(json.dumps(episode) + '\n')
    return step_path, episode_path


def run_converter(source: Path, target: Path, extra: list) -> tuple:
    """(seconds, peak RSS MiB) of one converter run in a fresh child process."""
    command = [sys.executable, str(REPO / 'scripts/convert_to_conversations.py'), '--input', str(source)]
    command += ['--output', str(target), '--image_root', '/data/android_control', *extra]
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f'converter failed on {source}: {command}')
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--episodes', type=int, default=10_000)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--prompt_format', default='fedmabench')
    parser.add_argument('--history', action='store_true')
    args = parser.parse_args()
    extra = ['--prompt_format', args.prompt_format, '--level', 'low'] + (['--history'] if args.history else [])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        step_path, episode_path = write_inputs(folder, args.episodes, args.steps)
        total_steps = args.episodes * args.steps
        for name, source, records in (('episode-wise', episode_path, args.episodes), ('step-wise', step_path, None)):
            seconds, peak = run_converter(source, folder / f'{name}.conv.jsonl', extra)
            records = records or total_steps
            print(
                f'{name}: {records} records / {total_steps} steps in {seconds:.1f} s = '
                f'{records / seconds:,.0f} rows/s, {total_steps / seconds:,.0f} steps/s; peak RSS {peak:.0f} MiB '
                f'(input {source.stat().st_size / 2**20:.0f} MiB)'
            )


if __name__ == '__main__':
    main()
