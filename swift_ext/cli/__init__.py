"""Command-line entry points: ``swift-fed`` and the ``swift sft`` hook."""
