import type { Server, Socket } from 'node:net';
import { AddressFamilyType, Command, IPv4ProxyAddress, IPv6ProxyAddress, TransportProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
import type { AddressAllowlist } from '../auth/allowlist.js';

/**
 * The PROXY protocol v2 header a TCP load balancer (HAProxy `send-proxy-v2`)
 * puts before the client's bytes, so that est-ra sees each device's own
 * address behind it (haproxy's doc/proxy-protocol.txt, §2.2).
 *
 * Framing is done here: the 16-byte fixed part and the length it announces,
 * read from the socket as the bytes arrive (a header may come in several TCP
 * segments), bounded in size and in time. The complete header is then parsed
 * by proxy-protocol-js; the differential spec checks both against HAProxy.
 */
export type ProxyHeader =
  /** A connection the balancer makes for itself (its health checks): no client behind it, its own address stands. */
  { readonly command: 'LOCAL' } | { readonly command: 'PROXY'; readonly address: string; readonly port: number; readonly family: 'IPv4' | 'IPv6' };

/** The 12-byte signature that opens every v2 header (§2.2). */
export const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const FIXED_LENGTH = 16;
/**
 * The most est-ra reads after the fixed part: the addresses (12 or 36 bytes) and any TLVs a balancer adds
 * (HAProxy's unique-id, ALPN, SSL: a few hundred bytes). The format allows 65535; nothing est-ra needs does.
 */
export const MAX_PAYLOAD_LENGTH = 1024;

/** Why a header was refused, for the one log line. */
export class ProxyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyHeaderError';
  }
}

/**
 * How many bytes the header at the start of `bytes` takes, once the fixed
 * part is there; undefined while fewer than 16 bytes have come. Refuses, as
 * soon as the bytes show it, anything that is not a v2 header.
 */
export function headerLength(bytes: Buffer): number | undefined {
  const signature = bytes.subarray(0, V2_SIGNATURE.length);
  if (!signature.equals(V2_SIGNATURE.subarray(0, signature.length))) throw new ProxyHeaderError('no PROXY protocol v2 signature');
  if (bytes.length < FIXED_LENGTH) return undefined;
  const payload = bytes.readUInt16BE(14);
  if (payload > MAX_PAYLOAD_LENGTH) throw new ProxyHeaderError(`header announces ${payload} bytes, more than ${MAX_PAYLOAD_LENGTH}`);
  return FIXED_LENGTH + payload;
}

/** One complete header (exactly `headerLength` bytes), parsed by proxy-protocol-js; throws ProxyHeaderError. */
export function parseProxyHeader(header: Buffer): ProxyHeader {
  let parsed: V2ProxyProtocol;
  try {
    parsed = V2ProxyProtocol.parse(new Uint8Array(header));
  } catch (err) {
    // proxy-protocol-js throws its own V2ProxyProtocolParseError, which is no Error.
    throw new ProxyHeaderError((err as { message?: string }).message ?? String(err));
  }
  // §2.2: the LOCAL command's addresses are to be ignored; the connection is the balancer's own.
  if (parsed.command === Command.LOCAL) return { command: 'LOCAL' };
  // A PROXY command must carry a TCP client's address; est-ra listens on TCP only (UNSPEC, UDP, UNIX: refused).
  if (parsed.transportProtocol !== TransportProtocol.STREAM) throw new ProxyHeaderError('not a TCP (STREAM) connection');
  const address = parsed.proxyAddress;
  if (parsed.addressFamilyType === AddressFamilyType.INET && address instanceof IPv4ProxyAddress) {
    return { command: 'PROXY', family: 'IPv4', address: address.sourceAddress.address.join('.'), port: address.sourcePort };
  }
  if (parsed.addressFamilyType === AddressFamilyType.INET6 && address instanceof IPv6ProxyAddress) {
    const bytes = Buffer.from(address.sourceAddress.address);
    const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16));
    return { command: 'PROXY', family: 'IPv6', address: compressIPv6(groups), port: address.sourcePort };
  }
  throw new ProxyHeaderError('a PROXY command with neither an IPv4 nor an IPv6 address');
}

/**
 * Reads the header at the start of `socket`, pulling only the bytes it takes:
 * what follows (the TLS ClientHello) is put back for the TLS server.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const done = (error: Error | undefined, header?: ProxyHeader, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      if (error) return reject(error);
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(header!);
    };
    const onReadable = (): void => {
      try {
        let chunk: Buffer | null;
        while ((chunk = socket.read() as Buffer | null) !== null) {
          received = Buffer.concat([received, chunk]);
          const length = headerLength(received);
          if (length !== undefined && received.length >= length)
            return done(undefined, parseProxyHeader(received.subarray(0, length)), received.subarray(length));
        }
      } catch (err) {
        done(err as Error);
      }
    };
    const onEnd = (): void => done(new ProxyHeaderError(`connection ended after ${received.length} bytes, before a complete PROXY header`));
    const onError = (err: Error): void => done(err);
    // A balancer sends the header at once; one that sends nothing must not hold the socket (nor its connection slot).
    const timer = setTimeout(() => done(new ProxyHeaderError(`no complete PROXY header within ${timeoutMs} ms`)), timeoutMs);
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}

/**
 * On `server`, connections from a configured load balancer must open with a
 * PROXY v2 header and are from then on seen (by the connection guard, the
 * allowlist, the refusal budgets, the logs and the request records) with the
 * device's address; connections from any other address are never parsed for
 * one, so a device cannot claim another's address. Runs before every other
 * 'connection' listener (the guard, the TLS server's), which it calls once
 * the header is read.
 */
export function acceptProxyProtocol(
  server: Server,
  balancers: AddressAllowlist,
  timeoutMs: number,
  onRefused: (address: string, reason: string) => void,
): void {
  const next = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const serve = (socket: Socket): void => {
    for (const listener of next) listener.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    const balancer = socket.remoteAddress ?? 'unknown';
    if (!balancers.allows(balancer)) return serve(socket);
    readProxyHeader(socket, timeoutMs).then(
      (header) => {
        if (socket.destroyed) return;
        if (header.command === 'PROXY') seeAs(socket, header);
        serve(socket);
      },
      (err: unknown) => {
        onRefused(balancer, err instanceof Error ? err.message : String(err));
        socket.destroy();
      },
    );
  });
}

/**
 * Makes `socket`, and the TLS socket the server wraps around it, report the
 * device's address: Node's TLS socket asks the TCP handle under it for its
 * peer (TLSWrap proxies getpeername to it), so the handle is where it is set.
 */
function seeAs(socket: Socket, header: Extract<ProxyHeader, { command: 'PROXY' }>): void {
  const handle = (socket as unknown as { _handle?: { getpeername?: (out: Record<string, unknown>) => number } })._handle;
  if (!handle) return;
  handle.getpeername = (out) => {
    out.address = header.address;
    out.port = header.port;
    out.family = header.family;
    return 0;
  };
  // net.Socket caches the peer it read before.
  delete (socket as unknown as { _peername?: unknown })._peername;
}

/** RFC 5952 §4.2: the longest run (of two or more) of zero groups becomes `::`, as Node prints addresses. */
function compressIPv6(groups: readonly string[]): string {
  // An IPv4-mapped address (RFC 4291 §2.5.5.2) is printed with its IPv4 tail, as Node prints ::ffff:10.1.2.3.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const [high, low] = [parseInt(groups[6]!, 16), parseInt(groups[7]!, 16)];
    return `::ffff:${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLength && j - i >= 2) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}
