// The vishvananda/netlink peer of dump-routes-65k and program-routes-65k: our own small driver,
// built by the bench from the Go module proxy (pinned by go.mod and go.sum) into
// ~/.cache/tunkeeper/bench-peers/, never into the repository. Same arguments and line protocol as
// the tunkeeper subject (bench/subjects/routes-subject.ts):
//
//	go-netlink-peer dump TABLE COUNT
//	go-netlink-peer program TABLE COUNT DEV PROTOCOL
//
// prints "ready", then for every "go" line on stdin runs the operation once and prints
// {"ms","count"} (dump) or {"ms","failed"} (program); any other line ends it.
//
// Dump: one Handle with NETLINK_GET_STRICT_CHK on (Handle.SetStrictCheck), RouteListFiltered
// with the table as filter, so the kernel dumps only that table and the library decodes every
// route into a netlink.Route. Program: the library has no batch or pipelined API, so one
// Handle.RouteAdd per route, each waiting for its acknowledgement, as its users write it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-netlink-peer: "+format+"\n", args...)
	os.Exit(1)
}

// prefix is the i-th measured destination, 198.18.0.0 + i as a /32 (bench/routes-workload.ts).
func prefix(i int) *net.IPNet {
	base := uint32(198)<<24 | uint32(18)<<16
	a := base + uint32(i)
	return &net.IPNet{IP: net.IPv4(byte(a>>24), byte(a>>16), byte(a>>8), byte(a)).To4(), Mask: net.CIDRMask(32, 32)}
}

func dump(h *netlink.Handle, table int) map[string]any {
	t0 := time.Now()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if err != nil {
		fail("dump: %v", err)
	}
	return map[string]any{"ms": ms, "count": len(routes)}
}

func program(h *netlink.Handle, table, count, ifindex, protocol int) map[string]any {
	t0 := time.Now()
	failed := 0
	var first error
	for i := 0; i < count; i++ {
		r := &netlink.Route{LinkIndex: ifindex, Dst: prefix(i), Table: table, Protocol: netlink.RouteProtocol(protocol), Scope: netlink.SCOPE_LINK}
		if err := h.RouteAdd(r); err != nil {
			if failed == 0 {
				first = err
			}
			failed++
		}
	}
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "go-netlink-peer: %d route adds failed, first: %v\n", failed, first)
	}
	return map[string]any{"ms": ms, "failed": failed}
}

func main() {
	a := os.Args[1:]
	if len(a) < 3 || (a[0] != "dump" && a[0] != "program") || (a[0] == "program" && len(a) < 5) {
		fail("usage: go-netlink-peer dump TABLE COUNT | program TABLE COUNT DEV PROTOCOL")
	}
	table, _ := strconv.Atoi(a[1])
	count, _ := strconv.Atoi(a[2])
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		fail("NewHandle: %v", err)
	}
	defer h.Close()
	if err := h.SetStrictCheck(true); err != nil {
		fail("SetStrictCheck: %v", err)
	}
	ifindex, protocol := 0, 0
	if a[0] == "program" {
		link, err := h.LinkByName(a[3])
		if err != nil {
			fail("no link %s: %v", a[3], err)
		}
		ifindex = link.Attrs().Index
		protocol, _ = strconv.Atoi(a[4])
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	fmt.Fprintln(out, "ready")
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && in.Text() == "go" {
		var result map[string]any
		if a[0] == "dump" {
			result = dump(h, table)
		} else {
			result = program(h, table, count, ifindex, protocol)
		}
		if err := enc.Encode(result); err != nil {
			fail("stdout: %v", err)
		}
		out.Flush()
	}
}
