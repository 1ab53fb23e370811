"""Command-line entry points: ``swift-fed`` (main.py), the ``swift sft`` hook (hook.py, sft.py) and ``swift-ext``
(ext.py: swift_ext's own sub-commands such as ``doctor``)."""
