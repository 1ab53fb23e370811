"""SCAFFOLD's client control variates c_i, kept where the client trains (never sent to the server).

Layout under the store's root (in-process: ``{run_dir}/client_state``; Flower: the SuperNode's state directory)::

    client_{k}/round_{r}.safetensors    c_i of client k as computed in round r

A client writes one version per round it trains. Which version counts is the server's decision: each task names the
round of the client's last *accepted* c_i (``ClientTask.control_round``), because the server adds Delta c_i to c only
for accepted updates and a resumed server continues from its last checkpoint. Loading a version removes every other
version of that client: they are either older than it or from rounds the server did not account for. So a client
has at most two versions on disk: the one the server counts and the one it wrote since.
"""

import os
import re
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from .state import State

VERSION = re.compile(r'^round_(\d+)\.safetensors$')


class ControlStore:
    """Versioned c_i per client under ``root``; files are written to a temporary name and renamed when complete."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _client_dir(self, client: int) -> str:
        return os.path.join(self.root, f'client_{client}')

    def load(self, client: int, control_round: Optional[int], like: State) -> State:
        """c_i of ``client`` as of ``control_round`` (zeros shaped like ``like`` when None); drops other versions.

        Raises ``FileNotFoundError`` naming the file when the server counts a version this store does not have
        (e.g. a SuperNode started with an empty state directory in the middle of a run).
        """
        directory = self._client_dir(client)
        keep = None if control_round is None else f'round_{control_round}.safetensors'
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name != keep:
                    os.remove(os.path.join(directory, name))
        if keep is None:
            return {name: torch.zeros_like(t, dtype=torch.float32) for name, t in like.items()}
        path = os.path.join(directory, keep)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'SCAFFOLD: the server counts c_i of client {client} from round {control_round}, but {path} is '
                'missing. Keep the client state directory for the whole run (it holds the client control variates).'
            )
        return load_file(path)

    def save(self, client: int, round_number: int, control: State) -> str:
        """Write c_i of ``client`` computed in ``round_number``; return the path."""
        directory = self._client_dir(client)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f'round_{round_number}.safetensors')
        staging = f'{path}.tmp'
        save_file({name: t.detach().cpu().contiguous() for name, t in control.items()}, staging)
        os.replace(staging, path)
        return path
