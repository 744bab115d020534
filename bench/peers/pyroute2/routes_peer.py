"""The pyroute2 peer of dump-routes-65k and program-routes-65k: our own small driver, run by the
bench in a virtualenv outside the repository (~/.cache/tunkeeper/bench-peers/pyroute2-<ver>/,
pyroute2 pinned exactly, from PyPI). Same arguments and line protocol as the tunkeeper subject
(bench/subjects/routes-subject.ts):

    routes_peer.py dump TABLE COUNT
    routes_peer.py program TABLE COUNT DEV PROTOCOL

prints "ready", then for every "go" line on stdin runs the operation once and prints
{"ms","count"} (dump) or {"ms","failed"} (program); any other line ends it.

Dump: IPRoute(strict_check=True).get_routes(table=TABLE, family=AF_INET), so the kernel dumps only
that table, and each route's destination read the way a user reads it (msg.get('dst')).

Program: as fast as the library allows. pyroute2 has a batch API, IPBatch: it compiles requests
into one buffer instead of sending each and waiting for its ack. Timed: compiling the COUNT
`route('add', ...)` requests with IPBatch, then sending the buffer in windows of WINDOW requests
on a netlink socket and reading each window's acknowledgements before the next (so the receive
buffer never overflows), counting the errors.
"""
import json
import os
import socket
import struct
import sys
import time

from pyroute2 import IPBatch, IPRoute

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
WINDOW = 1024


def fail(msg):
    sys.stderr.write(f"pyroute2-peer: {msg}\n")
    sys.exit(1)


def prefix(i):
    """The i-th measured destination, 198.18.0.0 + i (bench/routes-workload.ts)."""
    return f"198.18.{i >> 8}.{i & 255}"


def dump(ipr, table):
    t0 = time.perf_counter()
    routes = list(ipr.get_routes(table=table, family=socket.AF_INET))
    dsts = [r.get("dst") for r in routes]
    ms = (time.perf_counter() - t0) * 1000
    return {"ms": ms, "count": len(dsts)}


def split_messages(buf):
    """(offset, length) of each netlink message in a compiled batch."""
    out = []
    off = 0
    while off < len(buf):
        (length,) = struct.unpack_from("=I", buf, off)
        out.append((off, length))
        off += (length + 3) & ~3
    return out


def read_acks(sock, expected):
    """Reads `expected` acknowledgements; returns how many carried an error."""
    failed = 0
    seen = 0
    while seen < expected:
        data = sock.recv(1 << 20)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if kind == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, off + 16)
                seen += 1
                if error != 0:
                    failed += 1
            off += (length + 3) & ~3
    return failed


def program(sock, table, count, ifindex, protocol):
    t0 = time.perf_counter()
    ipb = IPBatch()
    for i in range(count):
        ipb.route("add", dst=prefix(i), dst_len=32, oif=ifindex, table=table, proto=protocol)
    buf = bytes(ipb.batch)
    ipb.close()
    msgs = split_messages(buf)
    failed = 0
    for w in range(0, len(msgs), WINDOW):
        window = msgs[w : w + WINDOW]
        start = window[0][0]
        end = window[-1][0] + window[-1][1]
        sock.send(buf[start:end])
        failed += read_acks(sock, len(window))
    ms = (time.perf_counter() - t0) * 1000
    if failed:
        sys.stderr.write(f"pyroute2-peer: {failed} route adds failed\n")
    return {"ms": ms, "failed": failed, "messages": len(msgs)}


def main():
    a = sys.argv[1:]
    if len(a) < 3 or a[0] not in ("dump", "program") or (a[0] == "program" and len(a) < 5):
        fail("usage: routes_peer.py dump TABLE COUNT | program TABLE COUNT DEV PROTOCOL")
    table, count = int(a[1]), int(a[2])
    ipr = IPRoute(strict_check=True)
    sock = None
    ifindex = protocol = 0
    if a[0] == "program":
        found = ipr.link_lookup(ifname=a[3])
        if not found:
            fail(f"no link {a[3]}")
        ifindex, protocol = found[0], int(a[4])
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((0, 0))
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        result = dump(ipr, table) if a[0] == "dump" else program(sock, table, count, ifindex, protocol)
        print(json.dumps(result), flush=True)
    ipr.close()
    os._exit(0)


if __name__ == "__main__":
    main()
