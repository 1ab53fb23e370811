"""swift_ext: federated fine-tuning of vision-language GUI agents on top of ms-swift 4.x.

Importing this package is cheap on purpose: the ``swift sft`` hook imports it at interpreter start-up.
"""

__version__ = '0.1.0'
