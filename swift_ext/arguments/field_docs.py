"""The field documentation of an argument dataclass, read from its docstring.

Arguments are documented the way ms-swift documents its own: a Google-style ``Args:`` section in the class docstring,
one entry per field, ``name (type): what it does. Defaults to X.``, continuation lines indented further. This module
imports only the standard library (``swift-fed sft --help`` reads it before anything heavy is loaded).
"""

import inspect
import re
from dataclasses import dataclass
from typing import Dict, Optional

ENTRY = re.compile(r'^(?P<name>\w+) \((?P<type>[^)]*)\): (?P<text>.*)$')
DEFAULT = re.compile(r"Defaults to (?P<value>'[^']*'|[-\w.+]*\w)")


@dataclass(frozen=True)
class FieldDoc:
    """One documented field: its name, the type as written, and its description (whitespace collapsed)."""

    name: str
    type: str
    text: str

    @property
    def default_text(self) -> Optional[str]:
        """The value after 'Defaults to' as written (``'fedavg'``, ``10``, ``1e-3``, ``None``), or None."""
        match = DEFAULT.search(self.text)
        return match.group('value') if match else None


def field_docs(cls: type) -> Dict[str, FieldDoc]:
    """Field name -> :class:`FieldDoc` for every entry of the ``Args:`` section of ``cls``'s docstring, in order."""
    lines = inspect.cleandoc(cls.__doc__ or '').splitlines()
    if 'Args:' not in lines:
        return {}
    docs: Dict[str, Dict[str, str]] = {}
    current = None
    for line in lines[lines.index('Args:') + 1 :]:
        if line and not line.startswith(' '):  # the next section ('Returns:', ...) ends Args
            break
        match = ENTRY.match(line[4:]) if line.startswith('    ') and not line.startswith('     ') else None
        if match:
            current = docs.setdefault(match['name'], {'type': match['type'], 'text': match['text']})
        elif current is not None and line.strip():
            current['text'] += ' ' + line.strip()
    return {name: FieldDoc(name, entry['type'], entry['text']) for name, entry in docs.items()}
