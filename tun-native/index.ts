/** tunkeeper/tun: the native kernel layer (TUN/TAP devices, netlink sockets, namespaces). */
export { NativeError, isNativeError } from './errors.js';
export { netnsPath } from './netns.js';
export * from './tun.js';
export * from './offload.js';
export * from './netlink-socket.js';
export * from './ping-socket.js';
