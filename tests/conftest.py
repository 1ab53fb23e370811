"""Shared fixtures: the offline tiny Qwen2-VL, the generated sample episodes, and a CLI runner.

Everything is built once per test session under pytest's temporary directory; nothing is downloaded.
"""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

# Offline everywhere: the tests build their model and data, and must never wait on a hub.
OFFLINE_ENV = {
    'HF_HUB_OFFLINE': '1',
    'HF_DATASETS_OFFLINE': '1',
    'MODELSCOPE_OFFLINE': '1',
    'TOKENIZERS_PARALLELISM': 'false',
}
os.environ.update(OFFLINE_ENV)
BIN_DIR = Path(sys.executable).parent


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory) -> str:
    from data_tools.tiny_model import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(str(tmp_path_factory.mktemp('tiny-qwen2-vl')))


@pytest.fixture(scope='session')
def sample_jsonl(tmp_path_factory) -> str:
    from data_tools.sample_episodes import write_sample_episodes

    return write_sample_episodes(str(tmp_path_factory.mktemp('sample')), num_episodes=16, num_clients=4)


@pytest.fixture(scope='session')
def sample_jsonl_without_clients(sample_jsonl, tmp_path_factory) -> str:
    """The sample episodes with the client_id column removed (clients then come from the IID partition)."""
    path = tmp_path_factory.mktemp('noclients') / 'episodes.jsonl'
    with open(sample_jsonl, encoding='utf-8') as src, open(path, 'w', encoding='utf-8') as dst:
        for line in src:
            row = json.loads(line)
            row.pop('client_id')
            dst.write(json.dumps(row) + '\n')
    return str(path)


def tiny_lora_options(model_dir: str, dataset: str, output_dir: str) -> Dict[str, object]:
    """The flags every tiny-model training test shares: LoRA, two local steps, CPU, offline, no loader workers."""
    return {
        'model': model_dir, 'model_type': 'qwen2_vl', 'template': 'qwen2_vl', 'dataset': dataset,
        'tuner_type': 'lora', 'lora_rank': 4, 'learning_rate': '5e-3', 'max_steps': 2,
        'gradient_accumulation_steps': 1, 'check_model': 'false', 'dataloader_num_workers': 0, 'report_to': 'none',
        'output_dir': output_dir,
    }  # fmt: skip


def as_argv(options: Dict[str, object]) -> List[str]:
    return [token for name, value in options.items() for token in (f'--{name}', str(value))]


def run_cli(command: List[str], env: Optional[Dict[str, str]] = None, timeout: int = 600) -> str:
    """Run a console script of this venv (``swift``, ``swift-fed``); fail with the output tail on a non-zero exit."""
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    executable = str(BIN_DIR / command[0])
    result = subprocess.run([executable, *command[1:]], env=full_env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f'{" ".join(command)} exited {result.returncode}:\n{output[-6000:]}'
    return output


def run_dir(output_dir: str) -> str:
    """The single versioned run directory ms-swift created under ``output_dir``."""
    runs = sorted(glob.glob(os.path.join(output_dir, 'v*-*')))
    assert len(runs) == 1, f'expected one run dir under {output_dir}, found {runs}'
    return runs[0]


def read_jsonl(path) -> List[dict]:
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


class NamingGlobalModel:
    """A round loop's ``GlobalModel`` that saves nothing and returns the directory name a run would use."""

    def save(self, round_number, state):
        return f'global_lora_{round_number}'


def load_adapter(path: str) -> Dict[str, 'object']:
    from safetensors.torch import load_file

    return load_file(os.path.join(path, 'adapter_model.safetensors'))
