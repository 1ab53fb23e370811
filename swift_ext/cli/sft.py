"""Federated ``swift sft`` process entry, routed here by ``swift-fed sft`` and by the ``swift sft`` hook."""

if __name__ == '__main__':
    from swift.cli.utils import try_use_single_device_mode

    try_use_single_device_mode()
    from swift_ext.federated.pipeline import fed_sft_main

    fed_sft_main()
