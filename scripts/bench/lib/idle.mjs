// Many idle clients: each sent CONNECT, one SUB and a PING, and got its PONG.
import { RawConn } from './wire.mjs';

/** Opens `n` idle clients, `parallel` handshakes at a time; each holds one subscription. */
export async function openIdleClients(port, n, parallel = 50) {
  const conns = [];
  let next = 0;
  const one = async () => {
    while (next < n) {
      const i = next++;
      const conn = await RawConn.open(port);
      conns.push(conn);
      conn.write(Buffer.from(`SUB bench.idle.${i} 1\r\n`));
      await conn.flush();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, n) }, one));
  } catch (err) {
    closeAll(conns);
    throw err;
  }
  return conns;
}

/** How many of `conns` the server closed. */
export function countClosed(conns) {
  return conns.filter((c) => c.closed).length;
}

export function closeAll(conns) {
  for (const c of conns) c.close();
}
