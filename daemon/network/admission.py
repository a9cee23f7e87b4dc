"""Which peers may open an association (DESIGN §5).

Peers are admitted by calling AE title, optionally tied to an address.  An
empty allow-list admits loopback peers only, so a node started with no
configuration at all is not open to the network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from daemon.settings import Peer


class Admission:
    def __init__(self, allowed_peers: Sequence[Peer]) -> None:
        self.allowed_peers = tuple(allowed_peers)

    def describe(self) -> str:
        if not self.allowed_peers:
            return "loopback peers only: no allowed_peers configured"
        return "allowed peers: " + ", ".join(
            f"{p.ae_title}@{p.host}" if p.host else f"{p.ae_title}@any" for p in self.allowed_peers
        )

    def refusal(self, calling_ae: str, address: str) -> str | None:
        """None when the peer is admitted, else the reason in words."""
        calling_ae = calling_ae.strip()
        if not self.allowed_peers:
            try:
                if ipaddress.ip_address(address).is_loopback:
                    return None
            except ValueError:
                pass
            return f"address {address} is not loopback and no allowed_peers are configured"
        titles = [p for p in self.allowed_peers if p.ae_title == calling_ae]
        if not titles:
            return f"calling AE title {calling_ae!r} is not in scp.allowed_peers"
        if any(p.host is None or _same_ip(p.host, address) for p in titles):
            return None
        return f"calling AE title {calling_ae!r} is allowed only from {', '.join(str(p.host) for p in titles)}, not {address}"


def _same_ip(a: str, b: str) -> bool:
    try:
        ia, ib = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return a == b
    if isinstance(ib, ipaddress.IPv6Address) and ib.ipv4_mapped:
        ib = ib.ipv4_mapped
    return ia == ib
