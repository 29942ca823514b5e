"""Which names may cross into a command sent to HAProxy or BIRD.

Everything a user writes that later appears in a socket command or a BIRD config file passes
through here first. The patterns are allow-lists: ``;`` and newlines are command separators on both
sockets, and quotes, ``*`` or non-ASCII could change what a command matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROXY_NAME_CHARS = "A-Z a-z 0-9 . _ : -"
_PROXY_CHAR = re.compile(r"[A-Za-z0-9._:-]")
_PROXY_NAME = re.compile(r"[A-Za-z0-9._:-]{1,255}\Z")
MAX_PROXY_NAME = 255
# A directory that BIRD's configuration names in an include pattern (rhid bird-config, --bird-dir).
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*\Z")

_SYMBOL_START = re.compile(r"[A-Za-z_]")
_SYMBOL_CHAR = re.compile(r"[A-Za-z0-9_]")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_SYMBOL = 64
# BIRD 2 lexes an even run of 32 or more hex digits as a byte string, not a symbol (measured on 2.0.12).
_BYTESTRING = re.compile(r"(?:[0-9A-Fa-f]{2}){16,}\Z")

# Words BIRD refuses as a protocol name: every lowercase word (and suffix of one, since the linker
# merges string tails) in /usr/sbin/bird for which `protocol static WORD { ... }` fails `bird -p`,
# on bird2 2.0.12 and bird 1.6.8 (union; byte-string-shaped words are covered by _BYTESTRING).
# tests/integration/test_bird_names.py checks this list against the installed BIRD.
BIRD_RESERVED = frozenset(
    """
    accept action add address administrative advertise after aigp algorithm all allow always area as as4
    asn attribute attributes auth authentication autonomous aware babel babel_metric base bcast bfd bgp
    bgp_aggregator bgp_aigp bgp_atomic_aggr bgp_cluster_list bgp_community bgp_ext_community
    bgp_large_community bgp_local_pref bgp_med bgp_next_hop bgp_origin bgp_originator_id bgp_otc
    bgp_path bgpmask bgppath bind bird blackhole blake2b256 blake2b512 blake2s128 blake2s256 block bool
    broadcast bt_assert bt_check_assign bt_test_same bt_test_suite buffer bug by capabilities case cast
    cease change channels check circuit class client clist cluster code collision commands communities
    confederation config configuration configure confirm connect connection contains cost cost2 count
    cryptographic current data data1 data2 dead debug deconfigured default define defined delay delete
    demand description dest deterministic dev device digits direct disable disabled dnssl do domain
    dont_fragment down dport drop dscp dst dual dump dynamic ebgp ec echo eclist ecmp eligible else
    empty enable enforce entries error eval events exit exp expire export exported extended external
    false fatal filename filter filtered filters first first_fragment flags flow4 flow6 flush for forget
    format fragment free from function garbage gateway gc generate generic global graceful gw gw_mpls
    header hello help hidden high hit hmac hold hop horizon hostname ibgp icmp id idle if ifindex ifname
    ignore igp igp_metric import in infinity info instance int interface interfaces internal interpret
    interval ip ipv4 ipv4_mc ipv4_mpls ipv6 ipv6_mc ipv6_mpls ipv6_sadr is_fragment is_v4 is_v6 iso keep
    keepalive kernel key keyed krt_advmss krt_cwnd krt_feature_allfrag krt_feature_ecn krt_hoplimit
    krt_initcwnd krt_initrwnd krt_lock_advmss krt_lock_cwnd krt_lock_hoplimit krt_lock_mtu
    krt_lock_reordering krt_lock_rto_min krt_lock_rtt krt_lock_rttvar krt_lock_sstresh krt_lock_window
    krt_metric krt_mtu krt_prefsrc krt_quickack krt_realm krt_reordering krt_rto_min krt_rtt krt_rttvar
    krt_scope krt_source krt_sstresh krt_window label large last last_fragment last_nonaggregated
    latency lc lclist learn len length lifetime limit linger link listen lived lladdr local log long low
    lsa lsadb lsid mac managed mandatory mask master master4 master6 match max maxlen md5 med medium
    member memory merge messages meticulous metric min missing mode mpls mrt mrtdump ms mtu mult
    multicast multihop multipath multiplier name nbma neighbor neighbors net netlink netmask networks
    next ng no noexport nonbroadcast none normal ns nssa of off offset old older on onlink only opaque
    originate ospf ospf_metric1 ospf_metric2 ospf_router_id ospf_tag other out packets pair passive
    password passwords path paths pe peer perf period permissive persist pipe plaintext pointomultipoint
    pointopoint poison poll port preexport prefer preference preferred prefix prepend pri primary print
    printn priority private prohibit propagate proto protocol protocols ptmp ptp public quad quit
    quitbird ra ra_lifetime ra_preference radv randomize range rd rdnss reachable real receive recursive
    refresh reject rejected reload remote repeat require reset resources restart restrict retrans
    retransmit retry return reverse rfc1583compat rfc5838 rip rip_metric rip_tag ro roa roa4 roa6
    roa_check roles route router routes rpki rr rs rt rx rxcost s sadr scan scope sec secondary security
    self sensitive sessions set setkey sets settle sha1 sha256 sha384 sha512 short show shutdown simple
    skip sockets soft solicited sorted source split sport src ssh stability stale start startup state
    states static stats status stderr strict string stub stubnet summary suppression symbols syslog
    table tag tcp template then threshold tick time timeformat timeout timer to topology trace
    translator transmit transparent transport trie trigger true ttl tx type undo unicast unknown
    unreachable unset update us user v2 v3 v6only valid validate version via virtual vpn vpn4 vpn4_mc
    vpn4_mpls vpn6 vpn6_mc vpn6_mpls vrf wait warn warning watchdog weight where wired wireless yes zero
    """.split()  # noqa: SIM905 -- 541 words read better wrapped than one per line
)

# Words only newer BIRDs refuse as a protocol name (2.17.6, 3.1.8, 3.4.0; measured the same way), and
# their shorter byte strings (3.4.0: an even run of 20 or more hex digits). The vendor's files may use
# them (BIRD 2.0 and 1.6 take them), so a rule file keeps them: `rhid check` and `rhid bird-config`
# warn instead, since BIRD 3 would refuse the configuration. tests/integration/test_bird_names.py
# checks that the installed BIRD refuses no name that rhid takes without a warning.
NEWER_BIRD_KEYWORDS = frozenset(
    """
    aes128 af aggregate aggregator allocator ao aspa aspa_check aspa_check_downstream
    aspa_check_upstream aspa_providers bmp bytestring checksum cli cmac cork custom customer decay
    deprecated digest distinguisher double enhanced enum express fixed from_hex generation group
    keys krt_lock_congctl krt_lock_fastopen_no_cookie krt_lock_initcwnd krt_lock_initrwnd
    krt_lock_quickack krt_lock_ssthresh l3vpn monitoring mpls_class mpls_label mpls_policy native
    net_evpn_type net_type option partial ping policy post_policy pre_policy provider providers
    ranges recv rib role rs_client rs_server rtd rts rtt scheduling secret send single size stacks
    station system tables target thread threads timers timestamps transit tunnel udp udp6 value
    wakeup worker
    """.split()  # noqa: SIM905 -- a wrapped list reads better than one per line
)
_NEWER_BYTESTRING = re.compile(r"(?:[0-9A-Fa-f]{2}){10,}\Z")


@dataclass(frozen=True, slots=True)
class NameProblem:
    """Why a name is refused: `offset` is the 0-based index of the first offending character."""

    offset: int
    message: str
    hint: str | None = None


def _describe(char: str) -> str:
    if char.isprintable() and char.isascii():
        return repr(char)
    if 0xDC80 <= ord(char) <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
        return f"byte 0x{ord(char) - 0xDC00:02X} (not UTF-8)"
    return f"U+{ord(char):04X}"


def proxy_name_problem(name: str, kind: str) -> NameProblem | None:
    """Say what is wrong with an HAProxy proxy name (`kind` is "backend" or "frontend"), or None."""
    if _PROXY_NAME.match(name):
        return None
    if not name:
        return NameProblem(0, f"empty {kind} name")
    for offset, char in enumerate(name):
        if not _PROXY_CHAR.match(char):
            return NameProblem(
                offset,
                f"invalid character {_describe(char)} in {kind} name",
                f"HAProxy names use only {PROXY_NAME_CHARS}",
            )
    return NameProblem(MAX_PROXY_NAME, f"{kind} name longer than {MAX_PROXY_NAME} characters")


def bird_symbol_problem(name: str, what: str) -> NameProblem | None:  # noqa: PLR0911 -- one exit per rule
    """Say why BIRD would not accept `name` as a symbol (`what` names its role), or None."""
    if not name:
        return NameProblem(0, f"empty {what}")
    if not _SYMBOL_START.match(name[0]):
        return NameProblem(
            0, f"{what} must start with a letter or '_'", "BIRD symbols are [A-Za-z_][A-Za-z0-9_]*"
        )
    for offset, char in enumerate(name):
        if not _SYMBOL_CHAR.match(char):
            return NameProblem(
                offset,
                f"invalid character {_describe(char)} in {what}",
                "BIRD symbols are [A-Za-z_][A-Za-z0-9_]*",
            )
    if len(name) > MAX_SYMBOL:
        return NameProblem(MAX_SYMBOL, f"{what} {name[:12]}... is longer than {MAX_SYMBOL} characters")
    if name in BIRD_RESERVED:
        return NameProblem(0, f"{what} {name!r} is a BIRD keyword", f"choose another name, e.g. vol_{name}")
    if _BYTESTRING.match(name):
        return NameProblem(
            0, f"{what} {name!r} reads as a hex byte string in BIRD", "add a letter outside a-f"
        )
    return None


def newer_bird_problem(name: str) -> str | None:
    """Why a name rhid accepts is refused by newer BIRDs (2.17, 3.x) as a protocol name, or None."""
    if name in NEWER_BIRD_KEYWORDS:
        return f"{name!r} is a keyword of newer BIRDs (2.17, 3.x), which refuse it as a protocol name"
    if _NEWER_BYTESTRING.match(name):
        return f"{name!r} reads as a hex byte string in BIRD 3.4"
    return None


def is_proxy_name(name: str) -> bool:
    """True when `name` may be sent to HAProxy or compared with its output."""
    return _PROXY_NAME.match(name) is not None


def is_bird_symbol(name: str) -> bool:
    """True when `name` may be written into a BIRD config or command."""
    return bird_symbol_problem(name, "name") is None


def require_bird_symbol(name: str) -> str:
    """Return `name` if it is a valid BIRD symbol; anything else reaching here is our bug."""
    if not is_bird_symbol(name):
        raise AssertionError(f"refusing to send unvalidated BIRD symbol {name!r}")
    return name
