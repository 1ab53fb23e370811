"""``swift-fed sft --help``: the federated arguments, their meanings and defaults, from ``FederatedArguments``' own
field documentation, grouped as in the README. Standard library only, so the help prints before torch is imported."""

import shutil
import textwrap
from dataclasses import fields
from typing import Dict, List, Tuple

from swift_ext.arguments.federated import FederatedArguments
from swift_ext.arguments.field_docs import FieldDoc, field_docs

MS_SWIFT_ARGUMENT_DOCS = 'https://swift.readthedocs.io/en/latest/Instruction/Command-line-parameters.html'

# Groups in README order; a field missing here is listed under 'Other federated arguments', never left out.
GROUPS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('Rounds and clients', ('fed_alg', 'round', 'client_num', 'client_sample', 'round_per_epoch', 'save_every')),
    (
        'Aggregation',
        ('fed_weighting', 'server_lr', 'server_momentum', 'fedopt_beta1', 'fedopt_beta2', 'fedopt_tau', 'fedprox_mu'),
    ),
    ('Data', ('partition', 'client_column', 'dataset_check_strategy')),
    ('Resuming and robustness', ('resume', 'client_failure', 'nonfinite_loss', 'save_client_updates')),
    (
        'Evaluation during training',
        ('fed_eval_every', 'fed_eval_generation_rows', 'fed_eval_prompt_format', 'fed_eval_max_new_tokens'),
    ),
    (
        'Differential privacy',
        (
            'dp_clip_norm',
            'dp_noise_multiplier',
            'dp_target_epsilon',
            'dp_delta',
            'dp_mode',
            'dp_adaptive_clip',
            'dp_target_quantile',
            'dp_clip_lr',
            'dp_clipped_count_stddev',
            'dp_secure_rng',
        ),
    ),
    ('Flower engines', ('fed_engine', 'supernodes', 'client_timeout', 'client_resources', 'wire_dtype')),
    (
        'Secure aggregation (Flower)',
        (
            'secure_aggregation',
            'secagg_num_shares',
            'secagg_reconstruction_threshold',
            'secagg_clipping_range',
            'secagg_quantization_range',
        ),
    ),
)
OTHER_GROUP = 'Other federated arguments'

HEADER = """\
usage: swift-fed sft [federated arguments] [ms-swift sft arguments]
       swift sft --fed_alg ALG [federated arguments] [ms-swift sft arguments]
       swift-fed sft config.yaml

Federated fine-tuning on ms-swift: every `swift sft` argument works as in ms-swift (model, template, dataset, LoRA,
training), plus the federated arguments below. ms-swift 2.x (FedMABench) names such as --sft_type and
--model_id_or_path are translated. With --max_steps > 0 each sampled client runs exactly that many optimizer steps per
round; with --max_steps -1 it trains --num_train_epochs passes over its round's share (see --round_per_epoch)."""

FOOTER = f"""\
ms-swift's own arguments: {MS_SWIFT_ARGUMENT_DOCS}
(`swift sft --help` in ms-swift 4.6 prints almost nothing.)"""


def grouped_fields() -> List[Tuple[str, List[str]]]:
    """(group title, field names) in display order, every field of ``FederatedArguments`` exactly once."""
    names = [f.name for f in fields(FederatedArguments)]
    groups = [(title, [name for name in members if name in names]) for title, members in GROUPS]
    listed = {name for _, members in groups for name in members}
    others = [name for name in names if name not in listed]
    return [(title, members) for title, members in groups + [(OTHER_GROUP, others)] if members]


def _entry(name: str, doc: FieldDoc, width: int) -> str:
    text = doc.text if doc is not None else 'Not documented.'
    body = textwrap.fill(text, width=width, initial_indent=' ' * 6, subsequent_indent=' ' * 6)
    return f'  --{name} ({doc.type if doc is not None else "?"})\n{body}'


def federated_help(width: int = 0) -> str:
    """The help text; ``width`` 0 takes the terminal's (at most 120 columns)."""
    width = width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    docs: Dict[str, FieldDoc] = field_docs(FederatedArguments)
    sections = [HEADER]
    for title, names in grouped_fields():
        sections.append(f'{title}:\n' + '\n'.join(_entry(name, docs.get(name), width) for name in names))
    sections.append(FOOTER)
    return '\n\n'.join(sections)
