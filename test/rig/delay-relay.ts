// A TCP relay that delays every byte by a fixed time in each direction: a long-distance link (a builder in a cloud
// region, the worker in a data centre) on loopback. Run as its own process, so its copying does not share the event
// loop of the client it measures. `tsx test/rig/delay-relay.ts HOST PORT ONE_WAY_MS` prints the port it listens on.
// No pacing: what limits throughput through it is the peers' flow control (SSH channel windows, SFTP requests in
// flight) over the round trip, as on a real link with plenty of bandwidth. The delayed pipe is the fault proxy's
// (./fault-proxy.ts), which tests run in-process with more faults than latency.
import net from 'node:net';
import { delayedPipe } from './fault-proxy';

const [host, port, delay] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])];

const server = net.createServer((client) => {
  const upstream = net.connect(port, host);
  const drop = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) s.on('error', drop).on('close', drop);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  delayedPipe(client, upstream, () => delay);
  delayedPipe(upstream, client, () => delay);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});
