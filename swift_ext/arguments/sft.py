"""``FedSftArguments``: ms-swift's ``SftArguments`` plus :class:`FederatedArguments`."""

from dataclasses import dataclass
from typing import Any, Dict

from swift.arguments import SftArguments

from ..federated.checkpoint import RUN_IDENTITY
from ..federated.resume import check_resumable, find_resumable_run
from .federated import FederatedArguments


@dataclass
class FedSftArguments(FederatedArguments, SftArguments):
    """Arguments of federated ``swift sft``: every ms-swift ``SftArguments`` field plus the federated ones.

    The dataset loader keeps extra columns (client ids, row ids) so client membership can be read after ms-swift's
    preprocessing; the template still drops them before the model sees a batch. With ``--resume`` the output
    directory is the resumed run's (no new version directory), checked against the run's recorded fed_alg,
    client_num and seed before anything is written there.
    """

    def __post_init__(self) -> None:
        self._check_federated()
        if self.resume:
            self.output_dir = find_resumable_run(self.resume, self.output_dir)
            check_resumable(self.output_dir, {key: getattr(self, key) for key in RUN_IDENTITY})
            self.add_version = False
        super().__post_init__()

    def get_dataset_kwargs(self) -> Dict[str, Any]:
        kwargs = super().get_dataset_kwargs()
        kwargs['remove_unused_columns'] = False
        return kwargs
