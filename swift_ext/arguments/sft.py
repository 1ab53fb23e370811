"""``FedSftArguments``: ms-swift's ``SftArguments`` plus :class:`FederatedArguments`."""

import glob
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from swift.arguments import SftArguments

from ..federated.checkpoint import CHECKPOINT_DIR
from .federated import FederatedArguments


def find_resumable_run(resume: str, output_dir: Optional[str]) -> str:
    """The run directory ``--resume`` names: the given directory, or (``true``) the newest run under ``output_dir``
    with a round checkpoint."""
    if resume.lower() != 'true':
        if not os.path.isfile(os.path.join(resume, CHECKPOINT_DIR, 'latest')):
            raise ValueError(f'--resume {resume}: no complete round checkpoint ({CHECKPOINT_DIR}/latest) there.')
        return os.path.abspath(resume)
    if output_dir is None:
        raise ValueError('--resume true needs --output_dir (the directory that holds the run to continue).')
    runs = sorted(
        path
        for path in glob.glob(os.path.join(output_dir, 'v*-*'))
        if os.path.isfile(os.path.join(path, CHECKPOINT_DIR, 'latest'))
    )
    if not runs:
        raise ValueError(
            f'--resume true: no run under --output_dir {output_dir} has a round checkpoint; '
            'pass the run directory instead (--resume output/v0-...).'
        )
    return os.path.abspath(max(runs, key=os.path.getmtime))


@dataclass
class FedSftArguments(FederatedArguments, SftArguments):
    """Arguments of federated ``swift sft``: every ms-swift ``SftArguments`` field plus the federated ones.

    The dataset loader keeps extra columns (client ids, row ids) so client membership can be read after ms-swift's
    preprocessing; the template still drops them before the model sees a batch. With ``--resume`` the output
    directory is the resumed run's (no new version directory).
    """

    def __post_init__(self) -> None:
        self._check_federated()
        if self.resume:
            self.output_dir = find_resumable_run(self.resume, self.output_dir)
            self.add_version = False
        super().__post_init__()

    def get_dataset_kwargs(self) -> Dict[str, Any]:
        kwargs = super().get_dataset_kwargs()
        kwargs['remove_unused_columns'] = False
        return kwargs
