"""TLS certificates and SuperNode authentication keys for a Flower federation, made with ``cryptography``.

What one call to :func:`write_credentials` leaves in ``directory`` (private keys are mode 0600; never commit them)::

    ca.crt, ca.key              a self-signed certificate authority (the SuperNodes trust ca.crt)
    server.pem, server.key      the SuperLink's certificate, signed by the CA, valid for the given host names/IPs
    supernode_{i}, .pub         SuperNode i's authentication key pair: EC P-384 in OpenSSH format, the form
                                ``flower-supernode --auth-supernode-private-key`` and ``flwr supernode register`` read

Command line (the README's multi-machine recipe)::

    swift-ext certs --output certs --hosts 10.0.0.5 superlink.example.org --supernodes 3
"""

import argparse
import datetime
import ipaddress
import os
from dataclasses import dataclass
from typing import List, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365


@dataclass(frozen=True)
class Credentials:
    """Paths of what :func:`write_credentials` wrote."""

    ca_certificate: str
    server_certificate: str
    server_key: str
    supernode_keys: List[str]  # private keys; the public key of each is the same path + '.pub'

    def supernode_public_key(self, index: int) -> str:
        return f'{self.supernode_keys[index]}.pub'


def _write(path: str, data: bytes, private: bool = False) -> str:
    """Write ``data`` to ``path``; private keys are created with mode 0600 (never readable by others)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(descriptor, 'wb') as f:
        f.write(data)
    return path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_names(hosts: Sequence[str]) -> List[x509.GeneralName]:
    names: List[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _certificate(subject: str, issuer: str, public_key, signing_key, hosts: Sequence[str], is_ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(_subject_names(hosts)), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def write_supernode_key(path: str) -> str:
    """An EC P-384 key pair in OpenSSH format: ``path`` (private, 0600) and ``path.pub``; returns ``path``."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    _write(path, private, private=True)
    _write(f'{path}.pub', public + b'\n')
    return path


def write_credentials(directory: str, hosts: Sequence[str], supernodes: int) -> Credentials:
    """A CA, a SuperLink certificate for ``hosts`` (IP addresses and/or DNS names) and ``supernodes`` key pairs."""
    if not hosts:
        raise ValueError('The SuperLink certificate needs at least one host name or IP address (--hosts).')
    os.makedirs(directory, mode=0o700, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_cert = _certificate('swift_ext Flower CA', 'swift_ext Flower CA', ca_key.public_key(), ca_key, [], True)
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = _certificate(hosts[0], 'swift_ext Flower CA', server_key.public_key(), ca_key, hosts, False)
    _write(os.path.join(directory, 'ca.key'), _pem_key(ca_key), private=True)
    ca_path = _write(os.path.join(directory, 'ca.crt'), ca_cert.public_bytes(serialization.Encoding.PEM))
    key_path = _write(os.path.join(directory, 'server.key'), _pem_key(server_key), private=True)
    cert_path = _write(os.path.join(directory, 'server.pem'), server_cert.public_bytes(serialization.Encoding.PEM))
    keys = [write_supernode_key(os.path.join(directory, f'supernode_{index}')) for index in range(supernodes)]
    return Credentials(ca_path, cert_path, key_path, keys)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='swift-ext certs', description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', required=True, help='directory to write into (created with mode 0700)')
    parser.add_argument(
        '--hosts', nargs='+', default=['127.0.0.1', 'localhost'],
        help='IP addresses / DNS names the SuperNodes use to reach the SuperLink (the certificate is valid for these)',
    )  # fmt: skip
    parser.add_argument('--supernodes', type=int, default=0, help='number of SuperNode key pairs to make')
    args = parser.parse_args(argv)
    credentials = write_credentials(args.output, args.hosts, args.supernodes)
    print(f'CA certificate (give it to every SuperNode): {credentials.ca_certificate}')
    print(f'SuperLink certificate and key: {credentials.server_certificate} {credentials.server_key}')
    for index, path in enumerate(credentials.supernode_keys):
        print(f'SuperNode {index}: private key {path} (keep on the node), public key {path}.pub (register it)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
