"""``FedSftArguments``: ms-swift's ``SftArguments`` plus :class:`FederatedArguments`."""

from dataclasses import dataclass
from typing import Any, Dict

from swift.arguments import SftArguments

from .federated import FederatedArguments


@dataclass
class FedSftArguments(FederatedArguments, SftArguments):
    """Arguments of federated ``swift sft``: every ms-swift ``SftArguments`` field plus the federated ones.

    The dataset loader keeps extra columns (client ids, row ids) so client membership can be read after ms-swift's
    preprocessing; the template still drops them before the model sees a batch.
    """

    def __post_init__(self) -> None:
        self._check_federated()
        super().__post_init__()

    def get_dataset_kwargs(self) -> Dict[str, Any]:
        kwargs = super().get_dataset_kwargs()
        kwargs['remove_unused_columns'] = False
        return kwargs
