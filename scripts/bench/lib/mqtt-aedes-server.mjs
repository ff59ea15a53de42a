// aedes as a plain Node MQTT server, the way its README runs it (Aedes.createBroker +
// net.createServer), default in-memory persistence. Started by lib/mqtt-servers.mjs in its own
// process, like the other brokers:  node mqtt-aedes-server.mjs PORT
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node mqtt-aedes-server.mjs PORT\n');
  process.exit(2);
}
const aedes = await Aedes.createBroker();
const server = createServer(aedes.handle);
server.listen(port, '127.0.0.1', () => process.stdout.write(`aedes listening on 127.0.0.1:${port}\n`));
// Exit normally on SIGTERM, so node --cpu-prof (if given) writes its profile.
process.on('SIGTERM', () => {
  server.close();
  aedes.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
