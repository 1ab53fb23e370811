"""Section 3, LoRA scope: ms-swift's own tuner preparation (``TunerMixin.prepare_model``, which ``swift sft`` calls
before building its trainer) applied to the loaded model with the run's arguments, then read back.

Reported: the modules that received adapters and the parameters that train, grouped by ms-swift's architecture keys
(``model_meta.model_arch``: language model, vision tower, aligner = merger) plus the embeddings and lm_head; whether
``--freeze_llm`` / ``--freeze_vit`` / ``--freeze_aligner`` hold; and scopes that are usually mistakes: adapters on the
embeddings or lm_head through ``--target_regex`` (warning), nothing trainable (blocking), everything trainable
(warning).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from peft.tuners.tuners_utils import BaseTunerLayer
from swift.pipelines.train.tuner import TunerMixin
from torch import nn

from ..template import find_input_embeddings, unwrap_model
from .model import module_name
from .report import Section, plural

LM_GROUPS = ('LM attention', 'LM MLP', 'LM other')
GROUPS = (*LM_GROUPS, 'vision tower', 'merger', 'embeddings', 'lm_head', 'other')
ATTENTION_PARTS = {'self_attn', 'attn', 'attention'}
# freeze flag -> (the groups it freezes, how the report names them)
FREEZE_FLAGS: Dict[str, Tuple[Sequence[str], str]] = {
    'freeze_llm': (LM_GROUPS, 'the language model'),
    'freeze_vit': (('vision tower',), 'the vision tower'),
    'freeze_aligner': (('merger',), 'the merger (aligner)'),
}
ANCHORED_REGEX = r'^(model\.language_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj)$'


def _as_list(value: Any) -> List[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + '.') for prefix in prefixes)


@dataclass(frozen=True)
class ModelParts:
    """Dotted-name prefixes of the model's parts, read before the tuner wraps it."""

    embeddings: List[str]
    lm_head: List[str]
    merger: List[str]
    vision_tower: List[str]
    language_model: List[str]

    @classmethod
    def of(cls, model: nn.Module) -> 'ModelParts':
        arch = getattr(getattr(model, 'model_meta', None), 'model_arch', None)
        try:
            embeddings = [module_name(model, find_input_embeddings(model))]
        except AttributeError:
            embeddings = []
        head = model.get_output_embeddings()
        return cls(
            embeddings=embeddings,
            lm_head=[module_name(model, head)] if head is not None else [],
            merger=_as_list(getattr(arch, 'aligner', None)),
            vision_tower=_as_list(getattr(arch, 'vision_tower', None)),
            language_model=_as_list(getattr(arch, 'language_model', None)) if arch is not None else [''],
        )

    @property
    def is_multimodal(self) -> bool:
        return bool(self.vision_tower)

    def group(self, name: str) -> str:
        """The report group of a module or parameter name (names of the unwrapped model)."""
        if _under(name, self.embeddings):
            return 'embeddings'
        if _under(name, self.lm_head):
            return 'lm_head'
        if _under(name, self.merger):
            return 'merger'
        if _under(name, self.vision_tower):
            return 'vision tower'
        if self.language_model == [''] or _under(name, self.language_model):
            parts = set(name.split('.'))
            if parts & ATTENTION_PARTS:
                return 'LM attention'
            return 'LM MLP' if 'mlp' in parts else 'LM other'
        return 'other'


@dataclass
class GroupScope:
    adapted: List[str] = field(default_factory=list)  # modules with an adapter
    trainable: int = 0  # trainable parameters (adapter weights, or whole weights that train)


@dataclass(frozen=True)
class TrainableScope:
    """What the federated plan needs: trainable elements, and their bytes in their own dtype (a global adapter)."""

    numel: int
    nbytes: int


def read_scope(prepared: nn.Module, parts: ModelParts) -> Tuple[Dict[str, GroupScope], int]:
    """(scope per group, total parameters) of a model after the tuner was applied."""
    inner = unwrap_model(prepared)
    groups = {group: GroupScope() for group in GROUPS}
    for name, module in inner.named_modules():
        if isinstance(module, BaseTunerLayer):
            groups[parts.group(name)].adapted.append(name)
    for name, parameter in inner.named_parameters():
        if parameter.requires_grad:
            groups[parts.group(name)].trainable += parameter.numel()
    return groups, sum(parameter.numel() for parameter in inner.parameters())


def _describe(scope: GroupScope) -> str:
    if not scope.adapted:
        return f'{scope.trainable:,} parameters train whole (no adapter)'
    leaves = sorted({name.rsplit('.', 1)[-1] for name in scope.adapted})
    modules = plural(len(scope.adapted), 'module')
    return f'{modules} with adapters ({", ".join(leaves)}); {scope.trainable:,} trainable parameters'


def _check_freeze_flags(section: Section, args: Any, groups: Dict[str, GroupScope]) -> None:
    for flag, (names, label) in FREEZE_FLAGS.items():
        frozen = getattr(args, flag)
        trainable = sum(groups[name].trainable for name in names)
        details = {'flag': flag, 'value': frozen, 'trainable': trainable}
        if frozen and trainable:
            section.warning(
                flag,
                f'{label} trains ({trainable:,} parameters) although --{flag} true: the flag only shapes '
                '--target_modules all-linear, and your target reaches it',
                f'leave {label} out of --target_modules / --target_regex, or set --{flag} false if you mean it',
                **details,
            )
        elif not frozen and not trainable:
            section.warning(
                flag,
                f'--{flag} false, but no parameter of {label} trains',
                f'use --target_modules all-linear (ms-swift then adapts {label}) or include it in --target_regex',
                **details,
            )
        else:
            state = 'is frozen' if frozen else 'trains'
            section.ok(flag, f'{label} {state}, as --{flag} {str(frozen).lower()} asks', **details)


def _check_mistakes(section: Section, args: Any, groups: Dict[str, GroupScope], trainable: int, total: int) -> None:
    on_embeddings = groups['embeddings'].adapted + groups['lm_head'].adapted
    if trainable == 0:
        section.blocking(
            'scope',
            'nothing trains: no parameter requires a gradient under these arguments',
            'make --target_modules / --target_regex match module names of the model (e.g. q_proj) and check the '
            'freeze flags',
        )
    elif trainable == total:
        section.warning(
            'scope',
            f'every parameter trains ({total:,}): each round sends the whole model to every sampled client',
            'use --tuner_type lora for federated runs, or freeze parts (--freeze_vit, --freeze_parameters)',
        )
    if on_embeddings and args.target_regex:
        adapter_share = sum(groups[name].trainable for name in ('embeddings', 'lm_head')) / trainable
        section.warning(
            'scope',
            f'--target_regex {args.target_regex} puts LoRA adapters on {", ".join(on_embeddings)}: usually a mistake '
            f'(vocabulary-sized adapters, {adapter_share:.1%} of the trainable parameters)',
            f"anchor the regex to the language model's layers, e.g. {ANCHORED_REGEX}, or use --target_modules "
            'all-linear (add all-embedding explicitly if you do want the embeddings)',
            modules=on_embeddings,
        )


def check_lora_scope(args: Any, model: nn.Module, template: Optional[Any]) -> Tuple[Section, Optional[TrainableScope]]:
    section = Section('LoRA scope')
    parts = ModelParts.of(model)
    try:
        prepared = TunerMixin.prepare_model(args, model, template=template)
    except Exception as error:  # noqa: BLE001 -- ms-swift's and peft's own errors are the finding
        section.blocking(
            'tuner',
            f'ms-swift cannot apply --tuner_type {args.tuner_type}: {type(error).__name__}: {error}',
            'fix --target_modules / --target_regex / --lora_rank (the run would stop here too)',
        )
        return section, None
    groups, total = read_scope(prepared, parts)
    trainable = sum(scope.trainable for scope in groups.values())
    adapted = sum(len(scope.adapted) for scope in groups.values())
    target = f'--target_regex {args.target_regex}' if args.target_regex else f'--target_modules {args.target_modules}'
    section.ok(
        'tuner',
        f'{args.tuner_type} ({target}): {plural(adapted, "module")} with adapters; {trainable:,} of {total:,} '
        f'parameters (adapters included) train ({trainable / total:.3%})',
        trainable=trainable,
        total=total,
        adapted_modules=adapted,
    )
    for name, scope in groups.items():
        if scope.trainable or scope.adapted:
            section.ok(name, _describe(scope), adapted=scope.adapted, trainable=scope.trainable)
    if parts.is_multimodal:
        _check_freeze_flags(section, args, groups)
    _check_mistakes(section, args, groups, trainable, total)
    trainable_bytes = sum(p.numel() * p.element_size() for p in prepared.parameters() if p.requires_grad)
    return section, TrainableScope(numel=trainable, nbytes=trainable_bytes)
