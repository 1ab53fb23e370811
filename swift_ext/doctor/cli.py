"""``swift-ext doctor``: diagnose a federated ``swift sft`` run before it starts.

    swift-ext doctor [--json] [--disk_budget BYTES] --model M --dataset D.jsonl [any swift sft / swift-fed argument]

The model is loaded once, on CPU in the requested dtype; no trainer is built and nothing is written. The report is a
table (or JSON with ``--json``) of sections: Environment, Arguments, Model and template, LoRA scope, Federated plan,
Data. Exit status 0: all good; 1: warnings only; 2: a blocking problem (each warning and problem names its fix).
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
from typing import List, Optional, Tuple

from .report import Section, exit_status, render_table, to_json

ARGUMENTS_FIX = 'correct the command line: the run would stop with the same error'


def doctor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='swift-ext doctor',
        description='Diagnose a federated swift sft run before it starts: environment, model and template, LoRA '
        'scope, federated plan, data. Exit status 0: all good, 1: warnings only, 2: a blocking problem.',
        epilog='Every other argument is the training command line, exactly as given to `swift sft` / `swift-fed sft` '
        '(ms-swift 2.x names included), e.g. --model M --dataset D.jsonl --fed_alg scaffold --client_num 30.',
        allow_abbrev=False,
    )
    parser.add_argument('--json', action='store_true', help='print the report as JSON instead of a table')
    parser.add_argument(
        '--disk_budget',
        type=int,
        metavar='BYTES',
        help="check the run's checkpoints against this many free bytes instead of the free space of --output_dir's "
        'file system (plan for a smaller disk)',
    )
    return parser


def split_doctor_argv(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """(the doctor's own options, the training command line)."""
    options, training_argv = doctor_parser().parse_known_args(argv)
    if options.disk_budget is not None and options.disk_budget < 0:
        doctor_parser().error(f'--disk_budget must be >= 0 bytes, got {options.disk_budget}.')
    return options, training_argv


def diagnose(training_argv: List[str], disk_budget: Optional[int]) -> List[Section]:
    """Every section, in report order. Each check that cannot run because of an earlier problem is 'skipped'."""
    # Imported here, after main() has set the log level that ms-swift reads at import time.
    from .arguments import parse_training_arguments
    from .data import check_data, first_kept_row_with_images
    from .environment import check_environment
    from .lora import check_lora_scope
    from .model import check_model_and_template, check_sample_encoding
    from .plan import check_plan

    arguments = Section('Arguments')
    try:
        args = parse_training_arguments(training_argv)
    except Exception as error:  # noqa: BLE001 -- whatever ms-swift raises on these arguments, the run raises too
        arguments.blocking('command line', f'{type(error).__name__}: {error}', ARGUMENTS_FIX)
        return [check_environment(None), arguments]
    arguments.ok(
        'command line',
        f'parsed as swift sft parses it: --model {args.model} --model_type {args.model_type} --template '
        f'{args.template} --tuner_type {args.tuner_type} --fed_alg {args.fed_alg} --output_dir {args.output_dir}',
        model=args.model,
        model_type=args.model_type,
        template=args.template,
        tuner_type=args.tuner_type,
        fed_alg=args.fed_alg,
        output_dir=args.output_dir,
    )
    model_section, loaded = check_model_and_template(args)
    template = loaded.template if loaded else None
    data_section, reports = check_data(args, template)
    if template is not None:
        sample = next(filter(None, (first_kept_row_with_images(report) for report in reports)), None)
        check_sample_encoding(model_section, template, sample)
    if loaded is None:
        lora_section, scope = Section('LoRA scope'), None
        lora_section.skipped('tuner', 'not applied: the model did not load (see Model and template)')
    else:
        lora_section, scope = check_lora_scope(args, loaded.model, template)
    plan_section = check_plan(args, reports, scope, disk_budget)
    environment = check_environment(loaded.image_processor if loaded else None)
    return [environment, arguments, model_section, lora_section, plan_section, data_section]


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault('LOG_LEVEL', 'WARNING')  # ms-swift's INFO lines would bury the report (LOG_LEVEL=INFO)
    options, training_argv = split_doctor_argv(sys.argv[1:] if argv is None else argv)
    # Libraries print to stdout now and then; with --json, stdout must hold the JSON document only.
    with contextlib.redirect_stdout(sys.stderr) if options.json else contextlib.nullcontext():
        sections = diagnose(training_argv, options.disk_budget)
    if options.json:
        print(json.dumps(to_json(sections), indent=2, default=str))
    else:
        print(render_table(sections, shutil.get_terminal_size((120, 24)).columns))
    return exit_status(sections)
