"""A misbehaving node for the fault tests, run in place of a SuperNode's training worker (same socket protocol).

It registers the clients its node config names (8 rows each, like the sample data) and answers every task with the
global state it received, broken on purpose: round 1 puts a NaN into the first tensor, round 2 returns that tensor
with the wrong shape, later rounds put an Inf into it. The server must exclude each of these updates and name why.

    python tests/flower_fake_worker.py --socket PATH
"""

import argparse
import os
import socket

import torch

from swift_ext.federated.client import ClientResult
from swift_ext.federated.transport.base import ClientUpdate
from swift_ext.flower.node_data import NodeData
from swift_ext.flower.payload import receive_frame, send_frame
from swift_ext.flower.protocol import NodeRegistration, decode_task, encode_update

ROWS = 8


def broken_state(round_number: int, global_state):
    state = {name: tensor.clone() for name, tensor in global_state.items()}
    first = sorted(state)[0]
    if round_number == 2:
        state[first] = torch.zeros(state[first].numel() + 1)
    else:
        state[first].view(-1)[0] = float('nan') if round_number == 1 else float('inf')
    return state


def answer(header, payload):
    clients = NodeData.from_node_config(header['node-config']).hosted_clients(client_num=1000)
    if header['type'] == 'query':
        return NodeRegistration({client: (ROWS, ROWS) for client in clients}, 'fake broken node', []).to_payload()
    task, wire_dtype = decode_task(payload)
    result = ClientResult(client=task.client, samples=ROWS, episodes=ROWS, round_samples=ROWS, steps=2, loss=1.0)
    return encode_update(ClientUpdate(result, broken_state(task.round_number, task.global_state)), wire_dtype)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--socket', required=True)
    args = parser.parse_args()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(args.socket):
        os.remove(args.socket)
    server.bind(args.socket)
    server.listen(8)
    while True:
        connection, _ = server.accept()
        with connection:
            header, payload = receive_frame(connection)
            send_frame(connection, {}, answer(header, payload))


if __name__ == '__main__':
    main()
