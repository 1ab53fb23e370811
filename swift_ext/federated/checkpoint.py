"""Round checkpoints for resumable runs: safetensors and JSON only, never pickle.

Layout under ``{run_dir}/fed_checkpoint/``::

    latest                      text: the name of the last complete checkpoint, replaced atomically
    round_{r}/                  written as round_{r}.tmp and renamed once complete
        global_state.safetensors    the global trainable state after round r
        strategy_state.safetensors  momenta / moments / SCAFFOLD c (may be empty)
        rng.safetensors + meta.json torch / numpy / python RNG states, round counter, run identity and, for
                                    SCAFFOLD, the round of every client's last accepted c_i (the c_i themselves
                                    stay with the clients: ``client_controls``)

A run killed at any moment resumes from ``latest``: a half-written ``round_{r}.tmp`` is ignored and removed, and the
previous round's directory is deleted only after ``latest`` points at the new one.
"""

import json
import os
import random
import shutil
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .state import State

CHECKPOINT_DIR = 'fed_checkpoint'
# What a resumed run must share with the run it continues; a value a run recorded before the key existed is its default.
RUN_IDENTITY = ('fed_alg', 'client_num', 'seed', 'secure_aggregation')
IDENTITY_DEFAULTS = {'secure_aggregation': 'none'}


def check_identity(recorded: Dict[str, Any], identity: Dict[str, Any], source: str) -> None:
    """Raise ``ValueError`` when the ``RUN_IDENTITY`` values ``recorded`` in ``source`` differ from ``identity``."""
    differ = [
        f'--{key} {recorded.get(key, IDENTITY_DEFAULTS.get(key))} (given: {identity[key]})'
        for key in RUN_IDENTITY
        if recorded.get(key, IDENTITY_DEFAULTS.get(key)) != identity[key]
    ]
    if differ:
        raise ValueError(
            f'--resume: {source} records {", ".join(differ)}. A resumed run continues with the arguments it was '
            'started with: resume with those, or start a new run without --resume.'
        )


@dataclass
class RoundCheckpoint:
    """What a resumed run needs from the last complete round."""

    round_number: int
    global_state: State
    strategy_state: State
    meta: Dict[str, Any]
    path: str


def _save_tensors(tensors: State, path: str) -> None:
    save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, path)


def rng_state() -> tuple[State, Dict[str, Any]]:
    """The global RNG states as tensors (torch, numpy key) and JSON (numpy position, python)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {'torch': torch.get_rng_state(), 'numpy_keys': torch.from_numpy(keys.astype(np.int64))}
    return tensors, {
        'numpy': [kind, int(pos), int(has_gauss), float(cached)],
        'python': [version, list(internal), gauss_next],
    }


def restore_rng_state(tensors: State, info: Dict[str, Any]) -> None:
    torch.set_rng_state(tensors['torch'])
    kind, pos, has_gauss, cached = info['numpy']
    np.random.set_state((kind, tensors['numpy_keys'].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = info['python']
    random.setstate((version, tuple(internal), gauss_next))


class CheckpointStore:
    """Writes and reads round checkpoints of one run directory."""

    def __init__(self, run_dir: str) -> None:
        self.root = os.path.join(run_dir, CHECKPOINT_DIR)

    def latest_path(self) -> Optional[str]:
        pointer = os.path.join(self.root, 'latest')
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding='utf-8') as f:
            return os.path.join(self.root, f.read().strip())

    def save(
        self,
        round_number: int,
        global_state: State,
        strategy_state: State,
        meta: Dict[str, Any],
    ) -> str:
        """Write round ``round_number`` completely, then point ``latest`` at it and drop the previous round."""
        os.makedirs(self.root, exist_ok=True)
        name = f'round_{round_number}'
        staging, final = os.path.join(self.root, f'{name}.tmp'), os.path.join(self.root, name)
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        _save_tensors(global_state, os.path.join(staging, 'global_state.safetensors'))
        _save_tensors(strategy_state, os.path.join(staging, 'strategy_state.safetensors'))
        rng_tensors, rng_info = rng_state()
        _save_tensors(rng_tensors, os.path.join(staging, 'rng.safetensors'))
        with open(os.path.join(staging, 'meta.json'), 'w', encoding='utf-8') as f:
            json.dump({**meta, 'round': round_number, 'rng': rng_info}, f)
        previous = self.latest_path()
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        pointer_tmp = os.path.join(self.root, 'latest.tmp')
        with open(pointer_tmp, 'w', encoding='utf-8') as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer_tmp, os.path.join(self.root, 'latest'))
        if previous and os.path.abspath(previous) != os.path.abspath(final):
            shutil.rmtree(previous, ignore_errors=True)
        return final

    def latest_meta(self) -> Optional[Dict[str, Any]]:
        """``meta.json`` of the last complete checkpoint (round counter and run identity), or None; reads no tensors
        and restores no RNG state."""
        path = self.latest_path()
        if path is None:
            return None
        with open(os.path.join(path, 'meta.json'), encoding='utf-8') as f:
            return json.load(f)

    def load_latest(self) -> Optional[RoundCheckpoint]:
        """The last complete checkpoint (RNG states restored), or None when the run has none."""
        meta = self.latest_meta()
        if meta is None:
            return None
        path = self.latest_path()
        restore_rng_state(load_file(os.path.join(path, 'rng.safetensors')), meta.pop('rng'))
        return RoundCheckpoint(
            round_number=meta['round'],
            global_state=load_file(os.path.join(path, 'global_state.safetensors')),
            strategy_state=load_file(os.path.join(path, 'strategy_state.safetensors')),
            meta=meta,
            path=path,
        )
