"""Which run ``--resume`` continues, and whether it may: decided before anything is written into the run directory.

A run directory can be resumed when it has a complete round checkpoint (``fed_checkpoint/latest``) or, killed before
its first checkpoint, the ``args.json`` of a federated run (ms-swift writes it once the data is ready, before the
first round). The run's identity (``RUN_IDENTITY``: fed_alg, client_num, seed, secure_aggregation) is read from the
checkpoint's ``meta.json`` or, without a checkpoint, from ``args.json``, and must equal the resuming command's; a
refused resume leaves the directory as it was. An ``args.json`` that is not valid JSON was cut short by a kill while
ms-swift wrote it (it writes the file in place), before any round: such a run starts round 1 with the resuming
command's arguments.
"""

import glob
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from swift.utils import get_logger

from .checkpoint import CHECKPOINT_DIR, CheckpointStore, check_identity

logger = get_logger()

ARGS_FILE = 'args.json'


@dataclass(frozen=True)
class ResumePoint:
    """Where a run stands: complete rounds, and its recorded arguments (``source``: the file they were read from;
    ``recorded`` is None when ``args.json`` was cut short before the first round)."""

    run_dir: str
    rounds_done: int
    recorded: Optional[Dict[str, Any]]
    source: str


def resume_point(run_dir: str) -> Optional[ResumePoint]:
    """The run in ``run_dir``, or None when it holds no federated run (no checkpoint, no args.json with fed_alg)."""
    store = CheckpointStore(run_dir)
    meta = store.latest_meta()
    if meta is not None:
        return ResumePoint(run_dir, meta['round'], meta, os.path.join(store.latest_path(), 'meta.json'))
    args_path = os.path.join(run_dir, ARGS_FILE)
    if not os.path.isfile(args_path):
        return None
    with open(args_path, encoding='utf-8') as f:
        try:
            recorded = json.load(f)
        except json.JSONDecodeError:
            return ResumePoint(run_dir, 0, None, args_path)
    return ResumePoint(run_dir, 0, recorded, args_path) if 'fed_alg' in recorded else None


def find_resumable_run(resume: str, output_dir: Optional[str]) -> str:
    """The run directory ``--resume`` names: the given directory, or (``true``) the newest run under ``output_dir``
    that has a round checkpoint or was started as a federated run."""
    if resume.lower() != 'true':
        if resume_point(resume) is None:
            raise ValueError(
                f'--resume {resume}: not a federated run directory (no {CHECKPOINT_DIR}/latest and no {ARGS_FILE} '
                'with a fed_alg). Pass the run directory (--resume output/v0-...) or --resume true.'
            )
        return os.path.abspath(resume)
    if output_dir is None:
        raise ValueError('--resume true needs --output_dir (the directory that holds the run to continue).')
    runs = [path for path in glob.glob(os.path.join(output_dir, 'v*-*')) if resume_point(path) is not None]
    if not runs:
        raise ValueError(
            f'--resume true: no federated run under --output_dir {output_dir}; pass the run directory instead '
            '(--resume output/v0-...), or start a new run without --resume.'
        )
    return os.path.abspath(max(runs, key=os.path.getmtime))


def check_resumable(run_dir: str, identity: Dict[str, Any]) -> ResumePoint:
    """The run in ``run_dir`` when its recorded identity equals ``identity``; ``ValueError`` otherwise."""
    point = resume_point(run_dir)
    if point is None:
        raise ValueError(f'--resume: {run_dir} holds no federated run.')
    if point.recorded is None:
        logger.warning(
            f'[swift_ext] --resume: {point.source} is incomplete (the run was stopped while it was written, before '
            'round 1); the run starts round 1 with the arguments given now.'
        )
    else:
        check_identity(point.recorded, identity, point.source)
    return point
