"""A run's image-resolution settings, recorded in its directory so that evaluation and the dataset check resize images
as training did.

ms-swift reads the Qwen-VL resize settings from environment variables, once per process, when it loads the first
Qwen-VL processor (``swift.model.models.qwen``: ``compat_qwen_vl_utils`` turns ``MAX_PIXELS``/``MIN_PIXELS`` into
qwen_vl_utils' token counts, ``patch_qwen_vl_utils`` reads the rest); ``PIXEL_ENV_VARS`` lists every one of them.

* :func:`record_pixel_settings` writes ``{name: value or null}`` for each of them, as this process's environment
  holds them, to ``<run_dir>/pixel_settings.json`` (null: unset, ms-swift's default applied).
* :func:`read_pixel_settings` reads that file back; :func:`pixel_settings_for_runs` merges the records of the runs
  being evaluated with the ``--max_pixels`` / ``--min_pixels`` options (options > the runs' record > this
  process's environment).
* :func:`apply_pixel_settings` makes ``os.environ`` hold exactly those values (an unset one is removed, so the
  default applies as it did in training). Call it before the first model processor is loaded in the process: later
  changes are not seen by ms-swift.
* :func:`use_run_pixel_settings` does both for a command (``swift-ext-eval``, ``python -m swift_ext.data_check``).
"""

import json
import logging
import os
from typing import Dict, MutableMapping, Optional, Sequence

logger = logging.getLogger(__name__)

#: the environment variables ms-swift 4.6 reads to resize Qwen-VL images and videos
PIXEL_ENV_VARS = (
    'MAX_PIXELS', 'MIN_PIXELS', 'IMAGE_MAX_TOKEN_NUM', 'IMAGE_MIN_TOKEN_NUM', 'IMAGE_FACTOR', 'SPATIAL_MERGE_SIZE',
    'MAX_RATIO', 'VIDEO_MAX_PIXELS', 'VIDEO_MIN_PIXELS', 'VIDEO_TOTAL_PIXELS', 'VIDEO_MAX_TOKEN_NUM',
    'VIDEO_MIN_TOKEN_NUM', 'FRAME_FACTOR', 'FPS', 'FPS_MIN_FRAMES', 'FPS_MAX_FRAMES',
)  # fmt: skip
PIXEL_SETTINGS_FILE = 'pixel_settings.json'
#: option -> (the variable it sets, the variable it clears because ms-swift derives it from the first)
PIXEL_OPTIONS = {
    'max_pixels': ('MAX_PIXELS', 'IMAGE_MAX_TOKEN_NUM'),
    'min_pixels': ('MIN_PIXELS', 'IMAGE_MIN_TOKEN_NUM'),
}

PixelSettings = Dict[str, Optional[str]]


class PixelSettingsError(ValueError):
    """A pixel_settings.json that cannot be used, or runs whose records disagree."""


def current_pixel_settings(environ: Optional[MutableMapping[str, str]] = None) -> PixelSettings:
    """Each of PIXEL_ENV_VARS with its value in ``environ`` (default os.environ), None when unset."""
    environ = os.environ if environ is None else environ
    return {name: environ.get(name) for name in PIXEL_ENV_VARS}


def record_pixel_settings(run_dir: str, environ: Optional[MutableMapping[str, str]] = None) -> str:
    """Write this process's pixel settings (``current_pixel_settings``) to ``run_dir/pixel_settings.json``; returns
    the path. The file is written under a temporary name and renamed, so it is complete or absent."""
    path = os.path.join(run_dir, PIXEL_SETTINGS_FILE)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(current_pixel_settings(environ), f, indent=2)
    os.replace(path + '.tmp', path)
    return path


def read_pixel_settings(run_dir: str) -> Optional[PixelSettings]:
    """The settings recorded in ``run_dir``, None when it has no pixel_settings.json (a run from before the file
    existed, or not a federated run). PixelSettingsError for a file that is not such a record."""
    path = os.path.join(run_dir, PIXEL_SETTINGS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            settings = json.load(f)
    except json.JSONDecodeError as exc:
        raise PixelSettingsError(f'{path}: not JSON ({exc}); delete it or write it with record_pixel_settings') from exc
    bad = (
        [f'{name}={value!r}' for name, value in settings.items() if not (value is None or isinstance(value, str))]
        if isinstance(settings, dict)
        else [f'a {type(settings).__name__}']
    )
    if bad:
        raise PixelSettingsError(f'{path}: expected {{"MAX_PIXELS": "602112" or null, ...}}, got {", ".join(bad)}')
    return {name: settings.get(name) for name in PIXEL_ENV_VARS}


def pixel_settings_for_runs(
    run_dirs: Sequence[str], overrides: Optional[Dict[str, Optional[int]]] = None
) -> PixelSettings:
    """The settings to evaluate or check with: the record of ``run_dirs`` (those without one are skipped; records
    that disagree raise PixelSettingsError naming both), else this process's environment; then each non-None
    ``overrides`` entry (keys of PIXEL_OPTIONS, pixels) sets its variable and clears the token count derived from it.
    """
    settings, source = None, None
    for run_dir in run_dirs:
        recorded = read_pixel_settings(run_dir)
        if recorded is None:
            logger.warning(f'{run_dir} has no {PIXEL_SETTINGS_FILE}; images are resized as this environment says')
        elif settings is None:
            settings, source = recorded, run_dir
        elif recorded != settings:
            raise PixelSettingsError(
                f'{source} and {run_dir} were trained at different image resolutions ({describe(settings)} vs '
                f'{describe(recorded)}); evaluate them separately'
            )
    settings = dict(current_pixel_settings() if settings is None else settings)
    for option, value in (overrides or {}).items():
        if value is None:
            continue
        if value <= 0:
            raise PixelSettingsError(f'--{option} {value}: a number of pixels must be positive')
        name, derived = PIXEL_OPTIONS[option]
        settings.update({name: str(value), derived: None})
    return settings


def apply_pixel_settings(settings: PixelSettings, environ: Optional[MutableMapping[str, str]] = None) -> None:
    """Set each variable of ``settings`` in ``environ`` (default os.environ), removing those that are None; a value
    that replaces a different one in the environment is logged."""
    environ = os.environ if environ is None else environ
    for name, value in settings.items():
        if environ.get(name) not in (None, value):
            logger.warning(f'{name}={environ[name]} in the environment is replaced by {value!r}')
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


def use_run_pixel_settings(
    run_dirs: Sequence[str], max_pixels: Optional[int] = None, min_pixels: Optional[int] = None
) -> PixelSettings:
    """Apply ``pixel_settings_for_runs(run_dirs, {'max_pixels': ..., 'min_pixels': ...})`` to os.environ and return
    it; call before the first processor loads."""
    settings = pixel_settings_for_runs(run_dirs, {'max_pixels': max_pixels, 'min_pixels': min_pixels})
    apply_pixel_settings(settings)
    return settings


def describe(settings: PixelSettings) -> str:
    """``MAX_PIXELS=50176, MIN_PIXELS=3136`` (the variables that are set), or ``defaults`` when none is."""
    return ', '.join(f'{name}={value}' for name, value in settings.items() if value is not None) or 'defaults'
