"""swift_ext's Flower ServerApp: the same round loop as in-process, talking to SuperNodes through the Flower transport.

It reads the swift arguments from the run config (:mod:`.run_config`), sets up the server half (model and tuner for
the initial global state, ``global_lora_{r}``, ``args.json`` and evaluation on ``--val_dataset``; no training row),
registers the SuperNodes, and runs ``FedSwiftSft.run_rounds`` over a
:class:`~swift_ext.federated.transport.flower.FlowerTransport`: same sampling, strategies, ``fed_log.jsonl``,
TensorBoard, checkpoints and ``--resume``. With ``--secure_aggregation secaggplus`` the transport runs each round
through Flower's SecAgg+ and the round loop only receives the round's sum.
"""

import hashlib
import os
from typing import Any, Dict, List, Set

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from .ms_swift_ray import run_ms_swift_locally
from .run_config import swift_argv

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_server(grid, swift_argv(context.run_config))


def run_key(run_dir: str) -> str:
    """The key nodes file this run's state under: the run directory's name plus a hash of its absolute path (two
    runs never share a key; a resumed run keeps it)."""
    path = os.path.abspath(run_dir)
    return f'{os.path.basename(path)}-{hashlib.sha256(path.encode("utf-8")).hexdigest()[:8]}'


def sampled_clients(args) -> Set[int]:
    """Every client the run's rounds will sample (each needs a SuperNode)."""
    from ..federated.sampling import clients_for_round

    return {
        client
        for round_idx in range(args.round)
        for client in clients_for_round(
            args.fed_alg, round_idx, args.client_num, args.client_sample, args.seed, args.local_client
        )
    }


def secagg_settings(args):
    """The run's :class:`~swift_ext.flower.secagg_server.SecAggSettings`, None without ``--secure_aggregation``."""
    if args.secure_aggregation == 'none':
        return None
    from .secagg_server import SecAggSettings

    return SecAggSettings(
        num_shares=args.secagg_num_shares,
        reconstruction_threshold=args.secagg_reconstruction_threshold,
        clipping_range=args.secagg_clipping_range,
        quantization_range=args.secagg_quantization_range,
    )


def run_server(grid: Grid, argv: List[str]) -> Dict[str, Any]:
    """Run the federated rounds of ``argv`` with the SuperNodes reachable through ``grid``; returns the run summary."""
    run_ms_swift_locally()  # before ms-swift's pipeline is imported (see .ms_swift_ray)
    from ..federated.pipeline import FedSwiftSft
    from ..federated.transport.flower import FlowerTransport
    from .protocol import RunIdentity
    from .registration import register_nodes

    pipeline = FedSwiftSft(argv)
    args = pipeline.args
    completed = pipeline.completed_run()
    if completed is not None:
        return completed
    run = RunIdentity(run_key(args.output_dir), os.path.abspath(args.output_dir))
    val = pipeline.prepare_server()
    directory = register_nodes(grid, run, args.supernodes, args.client_timeout, sampled_clients(args))
    transport = FlowerTransport(
        grid,
        directory,
        run,
        args.wire_dtype,
        args.client_timeout,
        secure=secagg_settings(args),
        weighting=args.weighting,
    )
    return pipeline.run_rounds(pipeline.build_round_loop(transport, val))
