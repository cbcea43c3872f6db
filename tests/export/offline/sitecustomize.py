"""Imported by every Python process the export tests start with this folder on PYTHONPATH:
any attempt to reach the network (a name lookup or an internet socket) is written to the file
named by UTOM_NETWORK_LOG and refused, so a test can assert that nothing was fetched."""

import os
import socket

_LOG = os.environ.get("UTOM_NETWORK_LOG")
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _record(what: object) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as handle:
            handle.write(f"{what}\n")


def _guarded(original):
    def connect(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _record(address)
            raise OSError(f"network access refused in the export tests: {address}")
        return original(self, address, *args, **kwargs)

    return connect


def _getaddrinfo(host, *args, **kwargs):
    _record(host)
    raise socket.gaierror(f"name lookup refused in the export tests: {host}")


socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)
socket.getaddrinfo = _getaddrinfo
