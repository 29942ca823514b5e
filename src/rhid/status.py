"""`rhid status`: what the daemon knows, as a document it serves on its control socket.

The document is built by the daemon (`rhid.daemon.Daemon.status_document`) and rendered here.
The wire protocol is one request line, ``status`` or ``status <prefix-or-address>``, and one JSON
reply, after which the daemon closes the connection. The request is parsed strictly: nothing
from it reaches another socket.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from typing import Any

from rhid import sockets
from rhid.errors import UnavailableError
from rhid.rules import Network

SOCKET_NAME = "rhid.sock"
MAX_REQUEST_BYTES = 256
MAX_REPLY_BYTES = 64 * 1024 * 1024


class StatusUnavailableError(UnavailableError):
    """The daemon's control socket could not be used."""


def parse_request(line: bytes) -> Network | str | None:
    """A request line: None for the whole status, a network to explain one route, or an error text."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return "request is not ASCII"
    command, _, argument = text.partition(" ")
    if command != "status":
        return "unknown request; send 'status' or 'status <prefix>'"
    if not argument:
        return None
    try:
        return ipaddress.ip_network(argument.strip(), strict=False)
    except ValueError:
        return f"not a prefix or address: {argument[:60]!r}"


def matches(prefix: Network, wanted: Network) -> bool:
    """A route is explained when it equals the asked prefix or contains the asked address."""
    if prefix.version != wanted.version:
        return False
    return prefix == wanted or (wanted.prefixlen == wanted.max_prefixlen and wanted.network_address in prefix)


def fetch(path: str, prefix: str | None, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the daemon at `path` for its status (or one route's)."""
    deadline = time.monotonic() + timeout
    sock = sockets.connect(path, deadline, StatusUnavailableError, "rhid")
    chunks: list[bytes] = []
    size = 0
    try:
        sock.sendall(b"status" + (b" " + prefix.encode("ascii", "replace") if prefix else b"") + b"\n")
        sock.shutdown(socket.SHUT_WR)
        while chunk := sockets.receive(sock, deadline, 65536):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise StatusUnavailableError(path, "reply too large")
            chunks.append(chunk)
    except TimeoutError:
        raise StatusUnavailableError(path, "the daemon did not answer in time") from None
    finally:
        sock.close()
    document: dict[str, Any] = json.loads(b"".join(chunks))
    return document


def _target_line(target: dict[str, Any]) -> str:
    return (
        f"      {target['proxy']:<24} {target['health']:<8} HAProxy says {target['haproxy_status']!r}; "
        f"down {target['down_count']}/{target['fall']}, up {target['up_count']}/{target['rise']}"
    )


def render(document: dict[str, Any]) -> str:
    """The status document in operator words."""
    if "error" in document:
        return f"rhid: {document['error']}"
    haproxy, bird, rules = document["haproxy"], document["bird"], document["rules"]
    lines = [
        f"rhid {document['version']} (pid {document['pid']}), up since {document['started']}",
        f"rules:   {rules['path']}: {rules['count']} rules, loaded {rules['loaded']}",
        f"         last reload: {rules['reload']}",
        f"haproxy: {haproxy['state']} ({haproxy['socket']})" + _error(haproxy),
        f"bird:    {_bird_state(bird)} ({bird['socket']})" + _error(bird),
    ]
    if bird.get("missing_protocols"):
        lines.append(
            f"         BIRD lacks protocol(s): {', '.join(bird['missing_protocols'])} (see rhid bird-config)"
        )
    lines.append(f"routes:  {document['announced']} announced, {document['withdrawn']} withdrawn")
    lines.extend(f"PROBLEM: {problem}" for problem in problems(document))
    for route in document["routes"]:
        state = "ANNOUNCED" if route["announced"] else "withdrawn"
        lines.append(
            f"  {route['prefix']:<20} table {route['table']:<8} {state:<9} since {route['since']}"
            f"  (line {route['rule_line']}: {route['rule']})"
        )
        lines.extend(_target_line(target) for target in route["targets"])
    return "\n".join(lines)


def _bird_state(bird: dict[str, Any]) -> str:
    if bird["state"] != "reachable":
        return f"{bird['state']}: rhid's files are current, BIRD reads them when it is back"
    return "reachable, in sync" if bird["in_sync"] else "reachable, NOT in sync"


def problems(document: dict[str, Any]) -> list[str]:
    """What an operator should look at: a failed reload, an unreachable peer, BIRD out of sync."""
    found = []
    if document["rules"]["reload"].startswith("failed"):
        found.append("the last reload failed: the old rules are in force")
    if document["haproxy"]["state"] != "reachable":
        found.append(f"HAProxy is {document['haproxy']['state']}")
    if document["bird"]["state"] != "reachable":
        found.append(f"BIRD is {document['bird']['state']}")
    elif not document["bird"]["in_sync"]:
        found.append("BIRD is not in sync with rhid's files")
    return found


def _error(peer: dict[str, Any]) -> str:
    return f"\n         last error: {peer['last_error']}" if peer.get("last_error") else ""
