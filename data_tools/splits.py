"""Official Android-Control splits (``splits.json``) and test sub-splits (``test_subsplits.json``) per episode."""

import json
from pathlib import Path
from typing import Dict, List, Optional


class EpisodeSplits:
    """Split name (train/validation/test) and test sub-split names (IDD, app_unseen, ...) of every episode id."""

    def __init__(self, splits: Dict[str, List[int]], test_subsplits: Optional[Dict[str, List[int]]] = None) -> None:
        self._split = {int(eid): name for name, ids in splits.items() for eid in ids}
        self._subsplits: Dict[int, List[str]] = {}
        for name, ids in (test_subsplits or {}).items():
            for eid in ids:
                self._subsplits.setdefault(int(eid), []).append(name)

    @classmethod
    def from_files(cls, splits_path: Optional[str], test_subsplits_path: Optional[str] = None) -> 'EpisodeSplits':
        """Read the two official JSON files (each a mapping of name -> list of episode ids); either may be None."""
        return cls(_load(splits_path), _load(test_subsplits_path))

    def split(self, episode_id: int) -> Optional[str]:
        return self._split.get(int(episode_id))

    def test_subsplits(self, episode_id: int) -> List[str]:
        return sorted(self._subsplits.get(int(episode_id), []))


def _load(path: Optional[str]) -> Dict[str, List[int]]:
    if path is None:
        return {}
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f'{path}: expected a JSON object mapping split names to lists of episode ids')
    return data
