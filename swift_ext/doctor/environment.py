"""Section 1, environment: Python and library versions against the tested matrix and swift_ext's declared ranges,
the devices torch sees, which qwen_vl_utils constants exist, and the pixel limits the checked template will use
(with the source of each number).

A version outside the range ``pyproject.toml`` declares is blocking; one inside it but not among the tested versions
(README, "Supported versions") is a warning.
"""

import importlib.metadata
import platform
from typing import Any, Dict, Optional, Sequence

import torch
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..template import resolve_pixel_limits_with_sources
from .report import Section

DISTRIBUTION = 'swift-ext'
# README "Supported versions": the two CI environments, (a) newest and (b) oldest. Keep both in step.
TESTED_VERSIONS: Dict[str, Sequence[str]] = {
    'python': ('3.11',),
    'torch': ('2.14.1',),
    'transformers': ('5.19.0', '4.57.6'),
    'peft': ('0.20.0', '0.17.1'),
    'ms-swift': ('4.6.0',),
    'qwen-vl-utils': ('0.0.14', '0.0.11'),
    'datasets': ('4.8.4',),
    'flwr-datasets': ('0.6.1',),
}
OPTIONAL_PACKAGES = ('flwr',)  # reported, not required: swift_ext uses flwr-datasets' partitioners only
QWEN_VL_UTILS_CONSTANTS = (
    'IMAGE_FACTOR',
    'MIN_PIXELS',
    'MAX_PIXELS',
    'IMAGE_MIN_TOKEN_NUM',
    'IMAGE_MAX_TOKEN_NUM',
    'SPATIAL_MERGE_SIZE',
)


def declared_requirements() -> Dict[str, SpecifierSet]:
    """Version ranges swift-ext's metadata declares ({} when it is not installed), 'python' included."""
    try:
        metadata = importlib.metadata.metadata(DISTRIBUTION)
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    ranges = {'python': SpecifierSet(metadata.get('Requires-Python') or '')}
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is None:  # extras (test tools) are not needed to train
            ranges[canonicalize_name(requirement.name)] = requirement.specifier
    return ranges


def installed_version(package: str) -> Optional[str]:
    if package == 'python':
        return platform.python_version()
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _is_tested(version: str, tested: Sequence[str]) -> bool:
    """``version`` (local part such as +cpu ignored) equals a tested version or extends it (3.11.9 is 3.11)."""
    public = Version(version).public
    return any(public == entry or public.startswith(entry + '.') for entry in tested)


def check_version(
    section: Section, package: str, version: Optional[str], tested: Sequence[str], declared: Optional[SpecifierSet]
) -> None:
    """One package's finding: blocking when missing or outside ``declared``, warning when untested, else ok."""
    install = f'use Python {tested[0]}' if package == 'python' else f'pip install "{package}=={tested[0]}"'
    if version is None:
        section.blocking(package, 'not installed', f'{install} (`make install` installs the tested stack)')
        return
    try:
        parsed = Version(version)
    except InvalidVersion:
        section.warning(package, f'{version}: not a version number swift_ext can compare', install)
        return
    tested_text = ', '.join(tested)
    if declared is not None and not declared.contains(parsed, prereleases=True):
        section.blocking(
            package,
            f'{version} is outside the range swift_ext supports ({declared}); tested: {tested_text}',
            install,
            version=version,
            supported=str(declared),
            tested=list(tested),
        )
    elif not _is_tested(version, tested):
        section.warning(
            package,
            f'{version} is supported ({declared or "no declared range"}) but untested; tested: {tested_text}',
            f'{install} to train on a tested stack (README, "Supported versions")',
            version=version,
            tested=list(tested),
        )
    else:
        section.ok(package, f'{version} (tested)', version=version)


def check_devices(section: Section) -> None:
    if not torch.cuda.is_available():
        section.ok('devices', 'CPU only (torch sees no CUDA device)', cuda=None, devices=[])
        return
    names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    section.ok(
        'devices',
        f'CUDA {torch.version.cuda}: {len(names)} device(s): {", ".join(names)}',
        cuda=torch.version.cuda,
        devices=names,
    )


def check_pixel_limits(section: Section, image_processor: Optional[Any]) -> None:
    """The qwen_vl_utils constants that exist, and the IMAGE_FACTOR / MIN_PIXELS / MAX_PIXELS the checked template
    resizes with (they need the model's image processor)."""
    from qwen_vl_utils import vision_process

    present = [name for name in QWEN_VL_UTILS_CONSTANTS if hasattr(vision_process, name)]
    constants = {name: getattr(vision_process, name) for name in present}
    missing = [name for name in QWEN_VL_UTILS_CONSTANTS if name not in constants]
    section.ok(
        'qwen_vl_utils',
        f'exports {", ".join(f"{k}={v}" for k, v in constants.items()) or "none of the pixel constants"}'
        + (f'; lacks {", ".join(missing)}' if missing else ''),
        constants=constants,
        missing=missing,
    )
    if image_processor is None:
        section.skipped('pixel limits', 'not resolved: the model processor did not load (see Model and template)')
        return
    try:
        limits, sources = resolve_pixel_limits_with_sources(image_processor)
    except ValueError as error:
        section.blocking('pixel limits', str(error), 'set MIN_PIXELS / MAX_PIXELS to integers with MIN <= MAX')
        return
    values = {'IMAGE_FACTOR': limits.image_factor, 'MIN_PIXELS': limits.min_pixels, 'MAX_PIXELS': limits.max_pixels}
    section.ok(
        'pixel limits',
        '; '.join(f'{name} {value} from {source}' for (name, value), source in zip(values.items(), sources.values())),
        **values,
        sources=sources,
    )


def check_environment(image_processor: Optional[Any]) -> Section:
    section = Section('Environment')
    declared = declared_requirements()
    for package, tested in TESTED_VERSIONS.items():
        check_version(section, package, installed_version(package), tested, declared.get(canonicalize_name(package)))
        if package == 'torch':
            check_devices(section)
    for package in OPTIONAL_PACKAGES:
        version = installed_version(package)
        section.ok(package, f'{version} (optional, not tested)' if version else 'not installed (optional)')
    check_pixel_limits(section, image_processor)
    return section
