// Just enough of the NATS client protocol, over a raw socket, to check a server from the
// outside without the nats package: INFO, CONNECT, PING/PONG, SUB, PUB and MSG.
import * as net from 'node:net';

export class RawNats {
  private buf = Buffer.alloc(0);
  private waiters: Array<(line: string, payload?: Buffer) => boolean> = [];
  private nextSid = 1;
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly info: Record<string, unknown>,
  ) {}

  /** Connects, reads INFO and does the CONNECT/PING/PONG handshake. */
  static async connect(url: string, timeoutMs = 5000): Promise<RawNats> {
    const { hostname, port } = new URL(url);
    const socket = net.connect({ host: hostname, port: Number(port) });
    const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let data = '';
      const timer = setTimeout(() => reject(new Error(`no INFO from ${url} within ${timeoutMs} ms`)), timeoutMs);
      const onData = (chunk: Buffer): void => {
        data += chunk.toString('utf8');
        const end = data.indexOf('\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.pause();
        const line = data.slice(0, end);
        if (!line.startsWith('INFO ')) return reject(new Error(`first line from ${url} is not INFO: ${line}`));
        if (end + 2 < data.length) socket.unshift(Buffer.from(data.slice(end + 2)));
        resolve(JSON.parse(line.slice(5)) as Record<string, unknown>);
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
    const client = new RawNats(socket, info);
    socket.on('data', (chunk: Buffer) => client.onData(chunk));
    socket.on('error', (e) => (client.closedError = e));
    socket.resume();
    socket.write('CONNECT {"verbose":false,"pedantic":false,"headers":false,"protocol":1}\r\nPING\r\n');
    await client.expect((line) => line === 'PONG', timeoutMs, 'PONG');
    return client;
  }

  /** Reads the first line a server sends (INFO ...) and closes the connection. */
  static async readInfo(url: string): Promise<Record<string, unknown>> {
    const client = await RawNats.connect(url);
    client.close();
    return client.info;
  }

  /** Publishes with a reply inbox and resolves to the first reply's payload. */
  async request(subject: string, payload: string, timeoutMs = 5000): Promise<string> {
    const sid = String(this.nextSid++);
    const inbox = `_INBOX.raw.${sid}`;
    const body = Buffer.from(payload, 'utf8');
    const reply = this.expect((line) => line.startsWith(`MSG ${inbox} ${sid} `), timeoutMs, `a reply on ${subject}`);
    this.socket.write(`SUB ${inbox} ${sid}\r\nPUB ${subject} ${inbox} ${body.length}\r\n`);
    this.socket.write(Buffer.concat([body, Buffer.from('\r\n')]));
    const [, data] = await reply;
    this.socket.write(`UNSUB ${sid}\r\n`);
    return data?.toString('utf8') ?? '';
  }

  close(): void {
    this.socket.destroy();
  }

  private expect(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<[string, Buffer | undefined]> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (line: string, payload?: Buffer): boolean => {
        if (line.startsWith('-ERR')) {
          clearTimeout(timer);
          reject(new Error(`server said ${line}`));
          return true;
        }
        if (!match(line)) return false;
        clearTimeout(timer);
        resolve([line, payload]);
        return true;
      };
      this.waiters.push(waiter);
    });
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const end = this.buf.indexOf('\r\n');
      if (end < 0) return;
      const line = this.buf.subarray(0, end).toString('utf8');
      let payload: Buffer | undefined;
      let consumed = end + 2;
      if (line.startsWith('MSG ')) {
        const size = Number(line.split(' ').at(-1));
        if (this.buf.length < consumed + size + 2) return; // wait for the whole payload
        payload = this.buf.subarray(consumed, consumed + size);
        consumed += size + 2;
      }
      this.buf = this.buf.subarray(consumed);
      if (line === 'PING') {
        this.socket.write('PONG\r\n');
        continue;
      }
      const i = this.waiters.findIndex((w) => w(line, payload));
      if (i >= 0) this.waiters.splice(i, 1);
    }
  }
}
