"""``swift-ext-eval``: score GUI-agent actions of adapters or of existing ``swift infer`` results.

Generate and score (one base model load; each adapter applied in turn)::

    swift-ext-eval --model M --run_dir output/v0-xxx --dataset test.jsonl --prompt_format json --output_dir eval/
    swift-ext-eval --model M --adapters a/global_lora_5 b/global_lora_5 --dataset test.jsonl --output_dir eval/

Score existing results (``swift infer --result_path R.jsonl``)::

    swift-ext-eval --results R1.jsonl R2.jsonl --prompt_format fedmabench --output_dir eval/ [--dataset test.jsonl]

Writes metrics.json, metrics.md, images/*.png and predictions_{label}.jsonl (one verdict per step).

Generation resizes images as the evaluated run was trained: the ``pixel_settings.json`` of ``--run_dir`` (and of
the run directory holding each ``--adapters`` entry) sets MAX_PIXELS, MIN_PIXELS, ...; ``--max_pixels`` /
``--min_pixels`` override it (``swift_ext.template.pixel_settings``).
"""

import argparse
import dataclasses
import glob
import json
import logging
import os
import re
from typing import Dict, List, Optional, Sequence

from swift_ext.evaluation.inference import Generation, adapter_engines, generate, judge_all
from swift_ext.evaluation.matching import DISTANCES, MatchOptions
from swift_ext.evaluation.parsers import PARSERS
from swift_ext.evaluation.report import label_round, write_report
from swift_ext.evaluation.scoring import score, verdict_row
from swift_ext.evaluation.steps import EvalStep, read_steps

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='swift-ext-eval', description=__doc__.split('\n')[0])
    source = parser.add_argument_group('what to evaluate')
    source.add_argument('--dataset', help='test jsonl of conversation rows (data_tools.conversations output); with '
                        '--results, the --val_dataset file they came from (adds episode/app/category)')  # fmt: skip
    source.add_argument('--results', nargs='+', default=[], help='swift infer result jsonl files to score')
    source.add_argument('--model', help='base model directory (generation mode)')
    source.add_argument('--adapters', nargs='+', default=[], help='PEFT adapter directories')
    source.add_argument('--run_dir', help='a federated run directory: evaluate every global_lora_{r}, in round order')
    source.add_argument('--base', action='store_true', help='also evaluate the base model without adapter')
    source.add_argument('--model_type', help="ms-swift model type; default: from the first adapter's args.json")
    source.add_argument('--template', help="ms-swift template type; default: from the first adapter's args.json")
    source.add_argument('--limit', type=int, default=0, help='evaluate the first N steps only (0: all)')
    source.add_argument('--test_subsplits', help='official sub-split JSON (name -> episode ids) for rows without '
                        'a test_subsplits column')  # fmt: skip
    gen = parser.add_argument_group('generation')
    gen.add_argument('--max_new_tokens', type=int, default=128)
    gen.add_argument('--batch_size', type=int, default=4)
    gen.add_argument('--max_pixels', type=int, help="resize images to at most this many pixels (default: the run's "
                     'pixel_settings.json, else MAX_PIXELS of the environment)')  # fmt: skip
    gen.add_argument('--min_pixels', type=int, help="resize images to at least this many pixels (default: the run's "
                     'pixel_settings.json, else MIN_PIXELS of the environment)')  # fmt: skip
    match = parser.add_argument_group('matching (see swift_ext/evaluation/matching.py)')
    match.add_argument('--prompt_format', default='fedmabench', choices=sorted(PARSERS))
    match.add_argument('--box_scale', type=float, default=MatchOptions.box_scale)
    match.add_argument('--distance_threshold', type=float, default=MatchOptions.distance_threshold)
    match.add_argument('--distance', default=MatchOptions.distance, choices=sorted(DISTANCES))
    match.add_argument('--text_f1_threshold', type=float, default=MatchOptions.text_f1_threshold)
    parser.add_argument('--output_dir', required=True)
    return parser


def run_adapters(run_dir: str) -> List[str]:
    """The global_lora_{r} directories of a federated run, by round; ValueError when there is none."""
    found = [
        p
        for p in glob.glob(os.path.join(run_dir, 'global_lora_*'))
        if re.fullmatch(r'global_lora_\d+', os.path.basename(p))
    ]
    if not found:
        raise ValueError(f'--run_dir {run_dir}: no global_lora_{{r}} directory; pass the v*-* run directory')
    return sorted(found, key=lambda p: label_round(os.path.basename(p)))


def training_args(adapter: str) -> Dict[str, object]:
    """The args.json ms-swift saved beside an adapter (model_type, template, ...); {} when absent."""
    path = os.path.join(adapter, 'args.json')
    if not os.path.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def with_subsplits(steps: Sequence[EvalStep], path: Optional[str]) -> List[EvalStep]:
    """Steps whose row lacked test_subsplits get the sub-splits of their episode id from the official JSON."""
    if not path:
        return list(steps)
    with open(path, encoding='utf-8') as f:
        subsplits: Dict[str, List[str]] = {}
        for name, ids in json.load(f).items():
            for episode in ids:
                subsplits.setdefault(str(episode), []).append(name)
    return [s if s.subsplits else dataclasses.replace(s, subsplits=tuple(subsplits.get(s.episode, ()))) for s in steps]


def _write_predictions(output_dir: str, label: str, verdicts: Sequence) -> None:
    with open(os.path.join(output_dir, f'predictions_{label}.jsonl'), 'w', encoding='utf-8') as f:
        for verdict in verdicts:
            f.write(json.dumps(verdict_row(verdict), ensure_ascii=False) + '\n')


def run_directories(args: argparse.Namespace) -> List[str]:
    """The run directories whose pixel settings apply: --run_dir and the directory holding each --adapters entry."""
    parents = [os.path.dirname(os.path.normpath(adapter)) for adapter in args.adapters]
    return list(dict.fromkeys(([args.run_dir] if args.run_dir else []) + parents))


def _generated(args: argparse.Namespace, options: MatchOptions) -> Dict[str, list]:
    steps = with_subsplits(read_steps(args.dataset, args.prompt_format), args.test_subsplits)
    steps = steps[: args.limit] if args.limit else steps
    adapters = list(args.adapters) + (run_adapters(args.run_dir) if args.run_dir else [])
    targets = ([None] if args.base or not adapters else []) + adapters
    saved = training_args(adapters[0]) if adapters else {}
    model_type, template = args.model_type or saved.get('model_type'), args.template or saved.get('template')
    verdicts = {}
    for adapter, engine in adapter_engines(args.model, targets, model_type, template):
        label = os.path.basename(os.path.normpath(adapter)) if adapter else 'base'
        logger.info(f'generating with {label} ({adapter or args.model}) on {len(steps)} steps')
        generations = generate(engine, steps, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        verdicts[label] = judge_all(steps, generations, args.prompt_format, options)
    return verdicts


def _scored_results(args: argparse.Namespace, options: MatchOptions) -> Dict[str, list]:
    verdicts = {}
    for path in args.results:
        steps = with_subsplits(read_steps(path, args.prompt_format, args.dataset), args.test_subsplits)
        steps = steps[: args.limit] if args.limit else steps
        missing = [s for s in steps if s.prediction is None]
        if missing:
            raise ValueError(f'{path}: rows without "response"; is it a swift infer --result_path file?')
        label = os.path.splitext(os.path.basename(path))[0]
        if label in verdicts:
            raise ValueError(f'--results: two files are named {label}.jsonl; labels come from file names, rename one')
        verdicts[label] = judge_all(steps, [Generation(s.prediction) for s in steps], args.prompt_format, options)
    return verdicts


def evaluate(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """Run the command on ``argv``; returns {label: score dict} (what metrics.json holds under 'results')."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.results) == bool(args.model):
        parser.error('pass either --results FILE... (score) or --model with --dataset (generate and score)')
    if args.model and not args.dataset:
        parser.error('--model needs --dataset (the test jsonl)')
    if args.results and (args.max_pixels or args.min_pixels):
        parser.error('--max_pixels/--min_pixels resize images for generation; --results files are already generated')
    options = MatchOptions(
        box_scale=args.box_scale, distance_threshold=args.distance_threshold, distance=args.distance,
        text_f1_threshold=args.text_f1_threshold,
    )  # fmt: skip
    settings = {'run': _run_name(args), 'prompt_format': args.prompt_format, **dataclasses.asdict(options)}
    if args.results:
        verdicts = _scored_results(args, options)
    else:
        from swift_ext.template.pixel_settings import PixelSettingsError, describe, use_run_pixel_settings

        try:  # before any processor loads
            pixels = use_run_pixel_settings(run_directories(args), args.max_pixels, args.min_pixels)
        except PixelSettingsError as exc:
            parser.error(str(exc))
        logger.info(f'images resized with {describe(pixels)}')
        settings['pixel_settings'] = pixels
        verdicts = _generated(args, options)
    os.makedirs(args.output_dir, exist_ok=True)
    for label, label_verdicts in verdicts.items():
        _write_predictions(args.output_dir, label, label_verdicts)
    results = {label: score(label_verdicts) for label, label_verdicts in verdicts.items()}
    for path in write_report(results, args.output_dir, settings):
        print(path)
    return results


def _run_name(args: argparse.Namespace) -> str:
    """What the report is about, for chart titles: the run directory's name, else the dataset or result files."""
    if args.run_dir:
        return os.path.basename(os.path.normpath(args.run_dir))
    return ', '.join(os.path.basename(path) for path in (args.results or [args.dataset]))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry (``swift-ext-eval``): progress (which model generates, image resolution) is logged to
    stderr; exits 0 on success."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter('[swift-ext-eval] %(message)s'))
    package_logger = logging.getLogger('swift_ext')
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    evaluate(argv)


if __name__ == '__main__':
    main()
