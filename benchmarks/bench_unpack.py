"""Benchmark (not a test): Android-Control unpack throughput against TensorFlow's parse loop and a bare one, same run.

Writes ``--shards`` GZIP TFRecord shards (zlib level 6, as TensorFlow's GZIP writer) holding ``--episodes`` episodes
of ``--steps`` 1080x2400 PNG screenshots (UI-like drawings with a photo, ~0.7 MB each; a pool of 12 reused) and
three-window accessibility forests (status bar, app with ~100 nodes, navigation bar), then times, on the same shards:

* TensorFlow's parse loop, with ``--tensorflow_python`` (an interpreter that can import TensorFlow; ``make
  bench-unpack`` builds one in ``build/venv-tensorflow``): FedMABench's own reading loop
  (``data_process/1_dump_ac.py``), ``tf.data.TFRecordDataset(shards, compression_type='GZIP').as_numpy_iterator()``
  and ``tf.train.Example``'s ``ParseFromString`` for each record, timed inside that interpreter after TensorFlow has
  read a first record (its start-up is not counted);
* bare parse loop: stream-decompress each shard, cut the records, parse each ``tf.train.Example`` and touch its
  screenshots: the same loop without TensorFlow and without checksums (zlib in large chunks, upb protobuf);
* unpack: ``data_tools.unpack`` with 1 worker and with ``--workers`` (checksums, element selection, PNG check, PNG
  and JSON writing).

It prints episodes/s and MB/s (shard bytes read per second), CPU seconds and episodes per CPU-second for each, and the
machine's load average. Unpack writes as many bytes as it reads, so on a slow disk the disk sets its pace:
``--output_root /dev/shm`` (a RAM disk) measures the work itself.

Usage: ``python benchmarks/bench_unpack.py [--episodes 300 --steps 6 --shards 4 --workers 4 --output_root DIR
--tensorflow_python PATH]``
"""

import argparse
import gzip
import io
import os
import random
import resource
import struct
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, List, Tuple

from android_env.proto.a11y.android_accessibility_forest_pb2 import AndroidAccessibilityForest
from PIL import Image, ImageDraw

from data_tools.episodes import EXAMPLE, GzipStream, masked_crc32c
from data_tools.unpack import unpack

WIDTH, HEIGHT = 1080, 2400


def screenshot(seed: int) -> bytes:
    """A 1080x2400 PNG: status bar, a list of coloured rows with text, and a photo-like patch."""
    rng = random.Random(seed)
    image = Image.new('RGB', (WIDTH, HEIGHT), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 80), fill=(30, 30, 30))
    for row in range(12):
        top = 200 + row * 170
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rounded_rectangle((40, top, WIDTH - 40, top + 140), radius=24, fill=colour)
        draw.text((80, top + 50), f'Item {seed}-{row} ' * 4, fill=(0, 0, 0))
    photo = Image.frombytes('RGB', (135, 150), rng.randbytes(135 * 150 * 3)).resize((540, 600), Image.BILINEAR)
    image.paste(photo, (270, 900))
    buffer = io.BytesIO()
    image.save(buffer, 'PNG')
    return buffer.getvalue()


def _add_window(forest, layer: int, window_type: int, active: bool, box: List[int]):
    window = forest.windows.add(layer=layer, window_type=window_type, is_active=active)
    rect = window.bounds_in_screen
    rect.left, rect.top, rect.right, rect.bottom = box
    return window


def _add_node(window, children: List[int], box: List[int], **info) -> None:
    node = window.tree.nodes.add(unique_id=len(window.tree.nodes), child_ids=children, **info)
    rect = node.bounds_in_screen
    rect.left, rect.top, rect.right, rect.bottom = box


def accessibility_forest(seed: int) -> bytes:
    """Status bar, an app window with a scrolling list of 24 rows (icon, title, subtitle, clickable row) and a
    navigation bar: ~110 nodes, as Android-Control's forests."""
    rng = random.Random(seed)
    forest = AndroidAccessibilityForest()
    status = _add_window(forest, 3, 3, False, [0, 0, WIDTH, 80])
    _add_node(status, [1, 2], [0, 0, WIDTH, 80], class_name='android.widget.FrameLayout')
    _add_node(status, [], [40, 10, 200, 70], text='12:30', class_name='android.widget.TextView')
    _add_node(status, [], [900, 10, 1040, 70], content_description='Battery 80 percent')
    app = _add_window(forest, 1, 1, True, [0, 0, WIDTH, HEIGHT])
    rows = list(range(2, 2 + 4 * 24, 4))
    _add_node(app, [1], [0, 0, WIDTH, HEIGHT], class_name='android.widget.FrameLayout')
    _add_node(app, rows, [0, 200, WIDTH, HEIGHT - 126], class_name='androidx.recyclerview.widget.RecyclerView')
    for row in range(24):
        top = 200 + row * 170
        first = len(app.tree.nodes)
        _add_node(app, [first + 1, first + 2, first + 3], [0, top, WIDTH, top + 160], is_clickable=True)
        _add_node(app, [], [40, top + 20, 160, top + 140], content_description=f'Avatar {rng.randrange(99)}')
        _add_node(app, [], [200, top + 20, 1000, top + 80], text=f'Conversation title number {row}')
        _add_node(app, [], [200, top + 90, 1000, top + 140], text='Last message preview that is rather long ' * 2)
    navigation = _add_window(forest, 2, 3, False, [0, HEIGHT - 126, WIDTH, HEIGHT])
    _add_node(navigation, [1, 2], [0, HEIGHT - 126, WIDTH, HEIGHT])
    _add_node(navigation, [], [100, HEIGHT - 126, 300, HEIGHT], content_description='Back', is_clickable=True)
    _add_node(navigation, [], [440, HEIGHT - 126, 640, HEIGHT], content_description='Home', is_clickable=True)
    return forest.SerializeToString()


def episode_record(episode_id: int, steps: int, shots: List[bytes], trees: List[bytes]) -> bytes:
    example = EXAMPLE()
    feature = example.features.feature
    feature['episode_id'].int64_list.value.append(episode_id)
    feature['goal'].bytes_list.value.append(b'Open the first conversation and reply with a thumbs up')
    for step in range(steps):
        feature['screenshots'].bytes_list.value.append(shots[(episode_id + step) % len(shots)])
        feature['accessibility_trees'].bytes_list.value.append(trees[(episode_id + step) % len(trees)])
        feature['screenshot_widths'].int64_list.value.append(WIDTH)
        feature['screenshot_heights'].int64_list.value.append(HEIGHT)
    for step in range(steps - 1):
        x, y = 540, 285 + 170 * (step % 12)
        feature['actions'].bytes_list.value.append(f'{{"action_type":"click","x":{x},"y":{y}}}'.encode())
        feature['step_instructions'].bytes_list.value.append(b'Tap the conversation')
    return example.SerializeToString()


def write_shards(folder: Path, episodes: int, steps: int, shards: int) -> List[str]:
    shots = [screenshot(seed) for seed in range(12)]
    trees = [accessibility_forest(seed) for seed in range(12)]
    paths = [str(folder / f'android_control-{i:05d}-of-{shards:05d}') for i in range(shards)]
    for i, path in enumerate(paths):
        with gzip.open(path, 'wb', compresslevel=6) as f:
            for episode_id in range(i, episodes, shards):
                payload = episode_record(episode_id, steps, shots, trees)
                length = struct.pack('<Q', len(payload))
                f.write(length + struct.pack('<I', masked_crc32c(length)))
                f.write(payload + struct.pack('<I', masked_crc32c(payload)))
    return paths


def parse_loop(paths: List[str]) -> None:
    """Decompress, frame and parse every record, touching the screenshots; no checksum, nothing written. The
    fastest such loop without TensorFlow: zlib in large chunks (data_tools' GzipStream) and upb protobuf."""
    for path in paths:
        with open(path, 'rb') as file:
            stream = GzipStream(file)
            while header := stream.read(12):
                (length,) = struct.unpack_from('<Q', header)
                example = EXAMPLE()
                example.ParseFromString(stream.read(length))
                stream.read(4)
                assert len(example.features.feature['screenshots'].bytes_list.value) > 0


# Runs in the TensorFlow interpreter: shard paths in argv; prints records read, wall seconds and CPU seconds.
TENSORFLOW_LOOP = """
import os, sys, time
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import tensorflow as tf
next(iter(tf.data.TFRecordDataset(sys.argv[1:2], compression_type='GZIP')))  # TensorFlow's start-up, not timed
start, start_cpu, records = time.perf_counter(), time.process_time(), 0
for record in tf.data.TFRecordDataset(sys.argv[1:], compression_type='GZIP').as_numpy_iterator():
    example = tf.train.Example()
    example.ParseFromString(record)
    assert len(example.features.feature['screenshots'].bytes_list.value) > 0
    records += 1
print(records, time.perf_counter() - start, time.process_time() - start_cpu)
"""


def tensorflow_parse_loop(python: str, paths: List[str], episodes: int) -> Tuple[float, float]:
    """(wall, CPU) seconds of TensorFlow's own loop over ``paths``, run by the interpreter ``python``."""
    result = subprocess.run([python, '-c', TENSORFLOW_LOOP, *paths], capture_output=True, text=True, check=True)
    records, seconds, cpu = result.stdout.split()[-3:]
    assert int(records) == episodes, f'TensorFlow read {records} records, expected {episodes}'
    return float(seconds), float(cpu)


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def report(name: str, seconds: float, cpu: float, paths: List[str], episodes: int) -> None:
    """Print wall-clock throughput and the CPU time spent: on a busy machine, episodes per CPU-second is the steadier
    figure of the work done."""
    megabytes = sum(os.path.getsize(p) for p in paths) / 1e6
    print(
        f'{name:<22} {seconds:7.2f} s  {episodes / seconds:7.1f} episodes/s  {megabytes / seconds:7.1f} MB/s  '
        f'CPU {cpu:7.2f} s  {episodes / cpu:7.1f} episodes/CPU-s'
    )


def timed(name: str, run: Callable[[], object], paths: List[str], episodes: int) -> None:
    start, start_cpu = time.perf_counter(), cpu_seconds()
    run()
    report(name, time.perf_counter() - start, cpu_seconds() - start_cpu, paths, episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--episodes', type=int, default=300)
    parser.add_argument('--steps', type=int, default=6, help='Screenshots per episode.')
    parser.add_argument('--shards', type=int, help='Default: --workers, at least 4.')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--output_root', help='Where unpack writes (default: next to the shards, a temp folder).')
    parser.add_argument('--tensorflow_python', help="An interpreter that imports TensorFlow: adds TensorFlow's loop.")
    args = parser.parse_args()
    shards = args.shards or max(4, args.workers)
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(dir=args.output_root) as out:
        paths = write_shards(Path(tmp), args.episodes, args.steps, shards)
        size = sum(os.path.getsize(p) for p in paths) / 1e6
        print(f'{args.episodes} episodes x {args.steps} screenshots in {shards} shards, {size:.0f} MB, unpacked '
              f'into {out}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')  # fmt: skip
        if args.tensorflow_python:  # its wall time varies from run to run (by 2x here): the median and the best of 3
            runs = sorted(tensorflow_parse_loop(args.tensorflow_python, paths, args.episodes) for _ in range(3))
            report('TensorFlow, median of 3', *runs[1], paths, args.episodes)
            report('TensorFlow, best of 3', *runs[0], paths, args.episodes)
        timed('bare parse loop', partial(parse_loop, paths), paths, args.episodes)
        for workers in sorted({1, args.workers}):
            run = partial(list, unpack(paths, str(Path(out, f'workers-{workers}')), workers=workers))
            timed(f'unpack, {workers} worker(s)', run, paths, args.episodes)


if __name__ == '__main__':
    main()
