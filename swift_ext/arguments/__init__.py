"""Argument dataclasses: the federated fields and their union with ms-swift's ``SftArguments``."""
