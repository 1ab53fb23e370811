"""The federated round loop on ms-swift.

Where things happen:
- a run and each round start in :mod:`swift_ext.federated.pipeline` (``FedSwiftSft.run`` / ``_run_round``);
- a client trains in :mod:`swift_ext.federated.client` (``train_client``);
- updates are aggregated by the server strategies in :mod:`swift_ext.strategies`.
"""
