"""Checked access to a Qwen2-VL model's parts through any wrapper and any transformers layout.

Wrappers are peeled in a fixed order: DDP/DeepSpeed/FSDP (``.module``), then PEFT (``get_base_model()``). The
embeddings come from the HF API ``get_input_embeddings()`` first, then from the known attribute paths of each
transformers layout (4.4x-4.51: ``model.embed_tokens``; >= 4.52 and 5.x: ``model.language_model.embed_tokens``).
``get_rope_index`` is looked up on the model and its inner model; when it is missing the run stops: falling back to
1-D positions (what the FedMABench fork did) silently trains a different model.
"""

from typing import Any, Callable, Optional, Sequence

from torch import nn

# Attribute paths to the text embeddings, relative to the unwrapped model, newest layout first.
EMBEDDING_PATHS: Sequence[str] = (
    'model.language_model.embed_tokens',
    'language_model.embed_tokens',
    'model.embed_tokens',
    'embed_tokens',
    'language_model.model.embed_tokens',
)
# Where get_rope_index lives: on the model (transformers <= 4.51) or its inner Qwen2VLModel (>= 4.52, 5.x).
ROPE_INDEX_OWNERS: Sequence[str] = ('', 'model')


def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model inside any number of DDP/DeepSpeed (``.module``) and PEFT wrappers."""
    while True:
        if hasattr(model, 'get_base_model') and callable(model.get_base_model):
            inner = model.get_base_model()
        elif isinstance(getattr(model, 'module', None), nn.Module):
            inner = model.module
        else:
            return model
        if inner is model:
            return model
        model = inner


def _attribute_path(root: Any, path: str) -> Optional[Any]:
    for name in filter(None, path.split('.')):
        root = getattr(root, name, None)
        if root is None:
            return None
    return root


def _hf_input_embeddings(model: nn.Module) -> Optional[nn.Module]:
    try:
        embeddings = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return embeddings if isinstance(embeddings, nn.Module) else None


def find_input_embeddings(model: nn.Module) -> nn.Module:
    """The text token embedding module of ``model`` (wrappers allowed); AttributeError listing what was tried."""
    inner = unwrap_model(model)
    embeddings = _hf_input_embeddings(inner)
    if embeddings is not None:
        return embeddings
    for path in EMBEDDING_PATHS:
        embeddings = _attribute_path(inner, path)
        if isinstance(embeddings, nn.Module):
            return embeddings
    raise AttributeError(
        f'Cannot find the text embeddings of {type(inner).__name__} (unwrapped from {type(model).__name__}): '
        f'get_input_embeddings() gave none and none of {", ".join(EMBEDDING_PATHS)} exists. '
        'Use a Qwen2-VL/Qwen2.5-VL model class from transformers 4.45-5.19.'
    )


def find_get_rope_index(model: nn.Module) -> Callable[..., Any]:
    """``get_rope_index`` of ``model`` or its inner model (wrappers allowed); AttributeError when neither has it."""
    inner = unwrap_model(model)
    for owner_path in ROPE_INDEX_OWNERS:
        owner = _attribute_path(inner, owner_path) if owner_path else inner
        get_rope_index = getattr(owner, 'get_rope_index', None)
        if callable(get_rope_index):
            return get_rope_index
    raise AttributeError(
        f'{type(inner).__name__} (unwrapped from {type(model).__name__}) has no get_rope_index, neither on the model '
        'nor on its inner .model. Qwen2-VL needs its 3-D (M-RoPE) positions; refusing to fall back to 1-D positions, '
        'which would train a different model. Use a Qwen2-VL/Qwen2.5-VL model class from transformers 4.45-5.19.'
    )


def find_visual(model: nn.Module) -> nn.Module:
    """The vision tower (``visual``) of ``model`` or its inner model; AttributeError when neither has one."""
    inner = unwrap_model(model)
    for path in ('visual', 'model.visual'):
        visual = _attribute_path(inner, path)
        if isinstance(visual, nn.Module):
            return visual
    raise AttributeError(f'{type(inner).__name__} has no vision tower at .visual or .model.visual.')
