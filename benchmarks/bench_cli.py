"""Benchmark (not a test): how long the command line takes to answer before any training starts.

Times, through the installed console scripts, ``swift-fed sft --help``, ``swift sft --fed_alg fedavg --help`` and
three command lines that fail the light checks (a misspelt federated flag, ``--client_sample 0``, ``--client_num``
larger than the clients of a data file), each ``--repeat`` times, and prints the median and worst wall time. The
issue's bar is 3 s for the help; all five answer before torch is imported.

Usage: ``python benchmarks/bench_cli.py [--repeat 5]``
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN_DIR = Path(sys.executable).parent


def timed(command, expected_status):
    start = time.perf_counter()
    result = subprocess.run([str(BIN_DIR / command[0]), *command[1:]], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != expected_status:
        raise SystemExit(f'{" ".join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}')
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / 'clients.jsonl'
        data.write_text(''.join(json.dumps({'episode_id': i, 'client_id': i % 4}) + '\n' for i in range(8)))
        cases = [
            ('swift-fed sft --help', ['swift-fed', 'sft', '--help'], 0),
            ('swift sft --fed_alg fedavg --help', ['swift', 'sft', '--fed_alg', 'fedavg', '--help'], 0),
            ('misspelt --client_nun', ['swift', 'sft', '--client_nun', '4', '--model', 'm'], 2),
            ('--client_sample 0', ['swift-fed', 'sft', '--fed_alg', 'fedavg', '--client_sample', '0'], 2),
            ('--client_num 10, data has 4', ['swift', 'sft', '--client_num', '10', '--dataset', str(data)], 2),
        ]
        print(f'{"command line":40s} {"median s":>9s} {"worst s":>8s}')
        for name, command, status in cases:
            times = [timed(command, status) for _ in range(args.repeat)]
            print(f'{name:40s} {statistics.median(times):9.2f} {max(times):8.2f}')


if __name__ == '__main__':
    main()
