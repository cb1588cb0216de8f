// A TCP relay that delays every byte by a fixed time in each direction: a long-distance link (a builder in a cloud
// region, the worker in a data centre) on loopback. Run as its own process, so its copying does not share the event
// loop of the client it measures. `tsx test/rig/delay-relay.ts HOST PORT ONE_WAY_MS` prints the port it listens on.
// No pacing: what limits throughput through it is the peers' flow control (SSH channel windows, SFTP requests in
// flight) over the round trip, as on a real link with plenty of bandwidth.
import net from 'node:net';

const [host, port, delay] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])];

function delayed(from: net.Socket, to: net.Socket): void {
  const queue: { at: number; data: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length && queue[0]!.at <= now) {
      const { data } = queue.shift()!;
      if (data) to.write(data);
      else to.end();
    }
    schedule();
  };
  const schedule = () => {
    if (!timer && queue.length) timer = setTimeout(drain, Math.max(0, queue[0]!.at - Date.now()));
  };
  from.on('data', (data: Buffer) => {
    queue.push({ at: Date.now() + delay, data });
    schedule();
  });
  from.on('end', () => {
    queue.push({ at: Date.now() + delay, data: null });
    schedule();
  });
}

const server = net.createServer((client) => {
  const upstream = net.connect(port, host);
  const drop = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) s.on('error', drop).on('close', drop);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  delayed(client, upstream);
  delayed(upstream, client);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});
