// Entering a network namespace without moving the Node.js process: the work runs on a short-lived
// thread that setns()es into the namespace, does its job (open a TUN device, a netlink socket) and
// ends. File descriptors made there stay bound to that namespace for their whole life, so the
// caller can use them from any thread afterwards.
#pragma once
#include <functional>
#include <string>

namespace tunkeeper {

// Runs fn() inside the network namespace at `path` (a bind mount such as /run/netns/NAME, or
// /proc/PID/ns/net); with an empty path, runs it on the calling thread. Returns 0 or an errno: the
// errno of entering the namespace (reported with *syscall set to "open"/"setns"), else fn()'s.
int RunInNetns(const std::string& path, const std::function<int()>& fn, const char** syscall);

}  // namespace tunkeeper
