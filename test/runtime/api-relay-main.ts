/**
 * Run by api-relay.ts inside the API namespace (nsenter --net): accepts TCP on ADDRESS:PORT there
 * and carries each connection to a Unix socket, which the test process serves from the host's
 * namespace by connecting to the API server on loopback. A Unix socket is a file, not a network
 * endpoint: no port, route or link of the host's namespace is used beyond the API server's own.
 * Prints `listening` once it accepts.
 */
import { connect, createServer } from 'node:net';

const [address, port, socketPath] = process.argv.slice(2);
if (!address || !port || !socketPath) throw new Error('usage: api-relay-main.js ADDRESS PORT SOCKET');
const server = createServer((client) => {
  const upstream = connect(socketPath);
  const drop = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', drop).on('close', drop);
  upstream.on('error', drop).on('close', drop);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.listen(Number(port), address, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
