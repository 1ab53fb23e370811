"""A Flower message's content as plain Python, and the same content as bytes on the node's local socket.

:class:`Payload` mirrors a ``RecordDict``: named ArrayRecords (``{name: {key: numpy array}}``), ConfigRecords and
MetricRecords (``{name: {key: value}}``). The ClientApp moves a message's content between Flower and the node's
training worker without interpreting it (and without importing torch); :mod:`swift_ext.flower.protocol` gives the
records their meaning.

On the socket a frame is::

    8-byte big-endian length | JSON {"header": ..., "configs": ..., "metrics": ..., "arrays": {record: [keys]}}
    8-byte big-endian length | safetensors (numpy) with the arrays stored as "0", "1", ... in the order listed

Only JSON and safetensors are ever decoded: nothing from the socket or the wire is unpickled.
"""

import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

Arrays = Dict[str, Dict[str, np.ndarray]]
Records = Dict[str, Dict[str, Any]]
LENGTH = struct.Struct('>Q')


@dataclass
class Payload:
    """The records of one message: ArrayRecords as numpy arrays, ConfigRecords and MetricRecords as dicts."""

    arrays: Arrays = field(default_factory=dict)
    configs: Records = field(default_factory=dict)
    metrics: Records = field(default_factory=dict)

    def to_record_dict(self):
        """The ``flwr.app.RecordDict`` with these records."""
        from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

        records: Dict[str, Any] = {}
        for name, arrays in self.arrays.items():
            records[name] = ArrayRecord({key: Array(_contiguous(value)) for key, value in arrays.items()})
        records.update({name: ConfigRecord(dict(values)) for name, values in self.configs.items()})
        records.update({name: MetricRecord(dict(values)) for name, values in self.metrics.items()})
        return RecordDict(records)

    @classmethod
    def from_record_dict(cls, content) -> 'Payload':
        """The records of a ``flwr.app.RecordDict`` (arrays decoded with ``np.load(allow_pickle=False)``)."""
        return cls(
            arrays={
                name: {key: array.numpy() for key, array in record.items()}
                for name, record in content.array_records.items()
            },
            configs={name: dict(record) for name, record in content.config_records.items()},
            metrics={name: dict(record) for name, record in content.metric_records.items()},
        )


def _contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (``np.ascontiguousarray`` would make them 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order='C')


def encode_frame(header: Dict[str, Any], payload: Payload) -> bytes:
    """``header`` (JSON-serialisable) and ``payload`` as one frame (see the module docstring)."""
    order = {name: list(arrays) for name, arrays in payload.arrays.items()}
    flat = {}
    for name, keys in order.items():
        for key in keys:
            flat[str(len(flat))] = _contiguous(payload.arrays[name][key])
    meta = json.dumps(
        {'header': header, 'configs': payload.configs, 'metrics': payload.metrics, 'arrays': order}
    ).encode('utf-8')
    blob = save_arrays(flat)
    return LENGTH.pack(len(meta)) + meta + LENGTH.pack(len(blob)) + blob


def decode_frame(meta: bytes, blob: bytes) -> Tuple[Dict[str, Any], Payload]:
    """The inverse of :func:`encode_frame`, given its two length-prefixed parts."""
    info = json.loads(meta.decode('utf-8'))
    flat = load_arrays(blob)
    arrays, index = {}, 0
    for name, keys in info['arrays'].items():
        arrays[name] = {}
        for key in keys:
            arrays[name][key] = flat[str(index)]
            index += 1
    return info['header'], Payload(arrays, info['configs'], info['metrics'])


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks, remaining = [], count
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError(f'the peer closed the connection with {remaining} of {count} bytes unread')
        chunks.append(chunk)
        remaining -= len(chunk)
    return b''.join(chunks)


def send_frame(sock: socket.socket, header: Dict[str, Any], payload: Payload) -> None:
    sock.sendall(encode_frame(header, payload))


def receive_frame(sock: socket.socket) -> Tuple[Dict[str, Any], Payload]:
    meta = _read_exactly(sock, LENGTH.unpack(_read_exactly(sock, LENGTH.size))[0])
    blob = _read_exactly(sock, LENGTH.unpack(_read_exactly(sock, LENGTH.size))[0])
    return decode_frame(meta, blob)
