"""Convert FedMABench step-wise or episode-wise JSONL to ms-swift sharegpt conversations (one JSON per line).

Example:
    python scripts/convert_to_conversations.py --input data/ac/step-wise-all.jsonl --output data/ac/conv.jsonl \
        --image_root data/ac --prompt_format fedmabench --level low --history --drop_if_missing
"""

import argparse
import sys
from typing import Optional, Sequence

from tqdm import tqdm

from data_tools.conversations import ConvertOptions, DropReport, convert_records, write_report
from data_tools.jsonl import dumps, iter_jsonl
from data_tools.prompts import LEVELS, PROMPT_FORMATS


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='step-wise-all.jsonl or episode-wise-all.jsonl (or a subset).')
    parser.add_argument('--output', required=True, help='Conversations JSONL to write.')
    parser.add_argument('--image_root', default='', help='Directory joined before relative image paths.')
    parser.add_argument('--drop_if_missing', action='store_true', help='Drop records whose image file is missing.')
    parser.add_argument('--prompt_format', default='fedmabench', choices=sorted(PROMPT_FORMATS))
    parser.add_argument('--level', default='high', choices=LEVELS, help='high: goal; low: goal + step instruction.')
    parser.add_argument('--history', action='store_true', help='List previous actions in step-wise prompts.')
    parser.add_argument('--report', help='Drop report JSON (default: <output>.report.json).')
    args = parser.parse_args(argv)
    options = ConvertOptions(args.prompt_format, args.level, args.history, args.image_root, args.drop_if_missing)
    report = DropReport()
    with open(args.output, 'w', encoding='utf-8') as out:
        records = tqdm(iter_jsonl(args.input), desc='records', unit='rec', mininterval=1.0)
        out.writelines(dumps(row) for row in convert_records(records, options, report))
    write_report(report, args.input, args.report or f'{args.output}.report.json')
    dropped = ', '.join(f'{reason}: {n}' for reason, n in report.counts.items()) or 'none'
    print(f'{args.input}: {report.converted} rows written to {args.output}; dropped: {dropped}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
