"""``swift-ext doctor``: one command that diagnoses a federated run before it starts.

One module per report section: ``environment`` (versions, devices, pixel limits), ``arguments`` (the training command
line as the run parses it), ``model`` (model, vision tokens, template, one sample end to end), ``lora`` (the tuner
scope ms-swift builds), ``plan`` (clients, local steps and learning rates, with ``steps`` and ``footprint`` for the
numbers: bytes on the wire, disk), ``data`` (the conversations check); ``report`` renders the findings and the exit
status; ``cli`` runs them in order.
"""
