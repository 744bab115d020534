/** Test doubles for code built on tunkeeper/netlink (the controller's unit tests use these). */
export * from './fake-socket.js';
