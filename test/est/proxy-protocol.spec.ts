import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { expect } from 'chai';
import { MAX_PAYLOAD_LENGTH, parseProxyHeader, readProxyHeader, V2_SIGNATURE, type ProxyHeader } from '../../src/est/proxy-protocol.js';
import { startHaproxy, type TestHaproxy } from '../helpers/haproxy.js';
import { prng } from '../helpers/prng.js';
import { eventually } from '../helpers/wait.js';

/** What a server reading PROXY headers saw on each connection: the header (or why it was refused) and the bytes after it. */
interface Seen {
  readonly header?: ProxyHeader;
  readonly refused?: string;
  readonly rest: string;
}

/** A plain TCP server that reads a PROXY header on every connection, then echoes what follows it back with what it saw. */
async function headerReader(timeoutMs = 2_000): Promise<{ server: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
    readProxyHeader(socket, timeoutMs).then(
      (header) => {
        let rest = '';
        socket.on('data', (chunk: Buffer) => {
          rest += chunk.toString('latin1');
          if (rest.endsWith('\n')) {
            seen.push({ header, rest });
            socket.end(`${JSON.stringify(header)}\n`);
          }
        });
        // A health check sends nothing after its header.
        socket.on('end', () => rest === '' && seen.push({ header, rest }));
      },
      (err: unknown) => {
        seen.push({ refused: err instanceof Error ? err.message : String(err), rest: '' });
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** Connects from `localAddress`, sends `bytes` in the pieces given, resolves with what came back (or '' when cut). */
function exchange(port: number, pieces: readonly Buffer[], localAddress = '127.0.0.1', onConnected?: (localPort: number) => void): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const send = async (): Promise<void> => {
      for (const piece of pieces) {
        socket.write(piece);
        // Separate TCP segments: the reader must put a header together from parts.
        await new Promise((r) => setImmediate(r));
      }
    };
    const host = localAddress.includes(':') ? '::1' : '127.0.0.1';
    const socket = connect({ port, host, localAddress }, () => {
      onConnected?.(socket.localPort!);
      void send();
    });
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
  });
}

function v2(command: number, familyProtocol: number, payload: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | command;
  fixed[1] = familyProtocol;
  fixed.writeUInt16BE(payload.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, payload]);
}

const TCP4_HEADER = v2(1, 0x11, Buffer.from([10, 1, 2, 3, 127, 0, 0, 1, 0x30, 0x39, 0x20, 0xfb]));

describe('PROXY protocol v2 header (src/est/proxy-protocol.ts)', function () {
  this.timeout(60_000);

  describe('against HAProxy, the real sender (differential)', () => {
    let reader: Awaited<ReturnType<typeof headerReader>>;
    let haproxy: TestHaproxy;
    before(async () => {
      reader = await headerReader();
      // A TCP connect check with check-send-proxy: HAProxy's health checks open with a LOCAL header.
      haproxy = await startHaproxy([{ name: 'reader', port: reader.port }], { checkSendProxy: true, ipv6: true });
    });
    after(async () => {
      await (haproxy as TestHaproxy | undefined)?.stop();
      reader.server.close();
    });

    it("reads the device's own address and port (TCP4 and TCP6) from every loopback source, and passes the bytes after the header on intact", async () => {
      for (const source of ['127.0.0.1', '127.0.0.2', '127.0.0.77', '127.1.2.3', '::1']) {
        const line = `hello from ${source} ${'x'.repeat(3000)}\n`;
        let port = 0;
        const answer = await exchange(haproxy.port, [Buffer.from(line)], source, (p) => (port = p));
        const header = JSON.parse(answer) as ProxyHeader;
        expect(header).to.deep.equal({ command: 'PROXY', family: source.includes(':') ? 'IPv6' : 'IPv4', address: source, port });
        const seen = reader.seen.find((s) => s.rest === line);
        expect(seen, `the bytes after the header from ${source}`).to.not.equal(undefined);
      }
    });

    it("takes HAProxy's health check header as LOCAL: no address, the connection is the balancer's", async () => {
      const local = await eventually(() => reader.seen.find((s) => s.header?.command === 'LOCAL'));
      expect(local.header).to.deep.equal({ command: 'LOCAL' });
      expect(reader.seen.filter((s) => s.refused)).to.deep.equal([]);
    });
  });

  describe('malformed headers (mutation): refused, never a crash or a hang', () => {
    let reader: Awaited<ReturnType<typeof headerReader>>;
    before(async () => (reader = await headerReader(500)));
    after(() => reader.server.close());

    it('parses hand-made TCP4, TCP6 and LOCAL headers', () => {
      expect(parseProxyHeader(TCP4_HEADER)).to.deep.equal({ command: 'PROXY', family: 'IPv4', address: '10.1.2.3', port: 12345 });
      const v6 = Buffer.alloc(36);
      Buffer.from('fd000000000000000000000000000007', 'hex').copy(v6, 0);
      v6[15] = 7;
      v6.writeUInt16BE(443, 32);
      expect(parseProxyHeader(v2(1, 0x21, v6))).to.deep.equal({ command: 'PROXY', family: 'IPv6', address: 'fd00::7', port: 443 });
      const mapped = Buffer.alloc(36);
      Buffer.from('00000000000000000000ffff0a010203', 'hex').copy(mapped, 0);
      expect(parseProxyHeader(v2(1, 0x21, mapped))).to.include({ address: '::ffff:10.1.2.3' });
      expect(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)))).to.deep.equal({ command: 'LOCAL' });
    });

    it('refuses, with a reason, each kind of wrong header', async () => {
      const cases: [string, Buffer[]][] = [
        ['TLS instead of a header', [Buffer.from('160301020001', 'hex')]],
        ['PROXY v1 text', [Buffer.from('PROXY TCP4 10.1.2.3 127.0.0.1 1 2\r\n')]],
        ['version 1 in the binary form', [Buffer.concat([TCP4_HEADER.subarray(0, 12), Buffer.from([0x11]), TCP4_HEADER.subarray(13)])]],
        ['unknown command', [Buffer.concat([TCP4_HEADER.subarray(0, 12), Buffer.from([0x2f]), TCP4_HEADER.subarray(13)])]],
        ['UNSPEC with PROXY', [v2(1, 0x00, Buffer.alloc(0))]],
        ['UDP', [v2(1, 0x12, TCP4_HEADER.subarray(16))]],
        ['UNIX', [v2(1, 0x31, Buffer.alloc(216))]],
        ['TCP4 with a short address block', [v2(1, 0x11, Buffer.alloc(8))]],
        ['a length above the bound', [Buffer.concat([TCP4_HEADER.subarray(0, 14), Buffer.from([0xff, 0xff])])]],
        ['cut short, then closed', [TCP4_HEADER.subarray(0, 20)]],
        ['nothing at all (timeout)', []],
      ];
      for (const [name, pieces] of cases) {
        reader.seen.length = 0;
        const answer = await exchange(reader.port, name.includes('timeout') ? [] : pieces.length ? pieces : []);
        expect(answer, name).to.equal('');
        const seen = await eventually(() => reader.seen[0]);
        expect(seen.refused, name).to.be.a('string').and.not.equal('');
      }
    });

    it('every single-byte mutation of a header, sent byte by byte or whole, is refused or parsed to a well-formed answer', async () => {
      const random = prng(1307);
      for (let i = 0; i < 300; i++) {
        const mutated = Buffer.from(TCP4_HEADER);
        const at = Math.floor(random() * mutated.length);
        mutated[at] = Math.floor(random() * 256);
        let outcome: ProxyHeader | string;
        try {
          outcome = parseProxyHeader(mutated);
        } catch (err) {
          outcome = (err as Error).message;
        }
        if (typeof outcome !== 'string') {
          // What parsed has a usable address, or is LOCAL.
          if (outcome.command === 'PROXY') expect(outcome.address).to.match(/^\d+\.\d+\.\d+\.\d+$|:/);
        }
      }
      // Through a socket, split at every byte: one header assembled from 28 segments, and a bad one refused mid-way.
      reader.seen.length = 0;
      const answer = await exchange(reader.port, [...[...TCP4_HEADER].map((b) => Buffer.from([b])), Buffer.from('after\n')]);
      expect(JSON.parse(answer)).to.include({ address: '10.1.2.3' });
      const bad = Buffer.from(TCP4_HEADER);
      bad[5] = 0;
      reader.seen.length = 0;
      expect(
        await exchange(
          reader.port,
          [...bad].map((b) => Buffer.from([b])),
        ),
      ).to.equal('');
      expect((await eventually(() => reader.seen[0])).refused).to.equal('no PROXY protocol v2 signature');
    });

    it(`reads no more than 16 + ${MAX_PAYLOAD_LENGTH} bytes for a header`, async () => {
      reader.seen.length = 0;
      const big = v2(1, 0x11, Buffer.alloc(MAX_PAYLOAD_LENGTH + 1));
      expect(await exchange(reader.port, [big])).to.equal('');
      expect((await eventually(() => reader.seen[0])).refused).to.match(/more than/);
    });
  });
});
