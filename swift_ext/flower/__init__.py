"""swift_ext on Flower (``--fed_engine flower|simulation``, ``flwr run``): clients on other processes, GPUs and
machines, with the same round loop, algorithms, logs and results as in-process.

- :mod:`.server_app` / :mod:`.client_app`: the Flower app (ServerApp main, ClientApp query/train handlers).
- :mod:`.registration`: which SuperNode hosts which client. :mod:`.protocol`: what the messages' records mean.
  :mod:`.payload`: records <-> plain Python <-> socket frames. (The transport itself is
  ``swift_ext.federated.transport.flower``, beside the in-process one.)
- :mod:`.node_worker` / :mod:`.node_service`: the node's persistent training (model loaded once per run).
  :mod:`.node_data`: what a node trains on (node config). :mod:`.run_config`: the swift arguments in a run config.
- :mod:`.launcher`: the loopback federation behind ``--fed_engine``. :mod:`.certificates`: TLS and node keys.
  :mod:`.ms_swift_ray`: ms-swift's Ray mode off inside Flower's Ray processes.
- :mod:`.secagg_client` / :mod:`.secagg_server`: secure aggregation with Flower's SecAgg+ (its mod on the node, its
  workflow on the server; ``--secure_aggregation secaggplus``).

Importing this package imports nothing (the ClientApp process must stay light).
"""
