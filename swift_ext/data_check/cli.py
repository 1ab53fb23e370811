"""``python -m swift_ext.data_check``: check conversations files before training, as ``--check_dataset_strategy``.

    python -m swift_ext.data_check --dataset data/conv.jsonl --model /models/Qwen2-VL-2B-Instruct \
        --max_length 8192 --strategy discard --output data/conv.checked.jsonl

Exit status 1 when ``--strategy error`` finds bad rows (every bad line is named on stderr). With ``discard`` the good
rows are copied to ``--output`` (train on that file) and the dropped ones listed in ``--report``.

The length check resizes images as training will: ``--max_pixels`` / ``--min_pixels``, else the
``pixel_settings.json`` of ``--run_dir`` (to check data at a finished run's resolution), else MAX_PIXELS /
MIN_PIXELS of the environment (``swift_ext.template.pixel_settings``).
"""

import argparse
import sys
from typing import Any, List, Optional

from .check import check_conversations_file, write_kept_rows
from .strategy import STRATEGIES, apply_strategy


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m swift_ext.data_check', description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', required=True, help='conversations JSON-lines file')
    parser.add_argument('--strategy', choices=list(STRATEGIES), default='error')
    parser.add_argument('--max_length', type=int, help='token limit; needs --model (no length check without it)')
    parser.add_argument('--model', help='model directory: its processor and template measure the tokenized length')
    parser.add_argument('--model_type', help="ms-swift model type (default: detected from --model's config)")
    parser.add_argument('--template', help="ms-swift template (default: the model type's own)")
    parser.add_argument('--report', help='JSON report of dropped rows (default: DATASET.check_report.json)')
    parser.add_argument('--output', help='with --strategy discard: where to copy the good rows')
    pixels = parser.add_argument_group('image resolution of the length check (with --model)')
    pixels.add_argument('--run_dir', help='a training run directory: resize images with its pixel_settings.json')
    pixels.add_argument('--max_pixels', type=int, help='resize images to at most this many pixels (MAX_PIXELS)')
    pixels.add_argument('--min_pixels', type=int, help='resize images to at least this many pixels (MIN_PIXELS)')
    args = parser.parse_args(argv)
    if (args.max_length is None) != (args.model is None):
        parser.error("--max_length and --model go together: the length is measured with the model's template.")
    if args.model is None and (args.run_dir or args.max_pixels or args.min_pixels):
        parser.error('--run_dir/--max_pixels/--min_pixels set the image resolution of the length check; add --model '
                     'and --max_length')  # fmt: skip
    return args


def build_template(model: str, model_type: Optional[str], template_type: Optional[str]) -> Any:
    """An ms-swift template in train mode for ``model`` (processor only; the weights are not loaded)."""
    from swift.model import get_processor
    from swift.template import get_template

    from swift_ext.template import register_checked_templates

    register_checked_templates()
    template = get_template(get_processor(model, model_type=model_type), template_type=template_type)
    template.set_mode('train')
    return template


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.model:  # the image resolution of the length check, before the processor loads
        from swift_ext.template.pixel_settings import PixelSettingsError, describe, use_run_pixel_settings

        try:
            pixels = use_run_pixel_settings([args.run_dir] if args.run_dir else [], args.max_pixels, args.min_pixels)
        except PixelSettingsError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
        print(f'images resized with {describe(pixels)}')
    template = build_template(args.model, args.model_type, args.template) if args.model else None
    report = check_conversations_file(args.dataset, template=template, max_length=args.max_length)
    print(report.summary())
    try:
        apply_strategy(report, args.strategy, args.report or f'{args.dataset}.check_report.json')
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    if args.strategy == 'discard' and args.output:
        kept = write_kept_rows(report, args.output)
        print(f'{len(kept)} good rows written to {args.output}')
    return 0
