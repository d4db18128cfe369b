import { isIPv4, isIPv6 } from 'node:net';
import IPCIDR from 'ip-cidr';

/**
 * A profile's `allowed_ip_addresses`, compiled at load. Every notation an
 * admin pastes from DigiCert's consoles is normalised onto CIDR blocks, which
 * ip-cidr then matches:
 *
 * | notation | example | means |
 * | --- | --- | --- |
 * | single address | `10.1.2.3`, `fd00::7` | that address |
 * | CIDR | `10.1.0.0/16`, `fd00::/64` | that block |
 * | range | `10.0.0.5-10.0.0.50` | every address from the first to the last |
 * | wildcard | `10.1.*.*`, `*` | trailing octets free; `*` alone: anything |
 * | PKI Platform | `143.11.129.0/255` | last octet from 0 to 255 (a suffix above 32 is the last octet's end) |
 *
 * An empty list allows any address. IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`)
 * are matched as the IPv4 address they carry.
 */
export interface AddressAllowlist {
  /** The CIDR blocks the entries became, for logs and `check-config`. */
  readonly blocks: readonly string[];
  allows(peerAddress: string): boolean;
}

/** An entry that is none of the notations above, with why. */
export class AllowlistEntryError extends Error {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`'${entry}': ${reason}`);
    this.name = 'AllowlistEntryError';
  }
}

export function compileAllowlist(entries: readonly string[]): AddressAllowlist {
  const blocks = entries.flatMap((entry) => toCidrBlocks(entry.trim()));
  if (entries.length === 0) return { blocks, allows: () => true };
  const v4 = blocks.filter((b) => !b.includes(':')).map((b) => new IPCIDR(b));
  const v6 = blocks.filter((b) => b.includes(':')).map((b) => new IPCIDR(b));
  return {
    blocks,
    allows(peerAddress) {
      const address = unmapIPv4(peerAddress);
      if (isIPv4(address)) return v4.some((block) => block.contains(address));
      if (isIPv6(address)) return v6.some((block) => block.contains(address));
      return false;
    },
  };
}

/** `::ffff:10.1.2.3` is the IPv4 peer 10.1.2.3 on a dual-stack socket. */
export function unmapIPv4(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** One entry in any notation, as CIDR blocks. */
export function toCidrBlocks(entry: string): string[] {
  if (entry === '*') return ['0.0.0.0/0', '::/0'];
  if (entry.includes('*')) return [wildcardToCidr(entry)];
  const range = /^([0-9a-fA-F:.]+)\s*-\s*([0-9a-fA-F:.]+)$/.exec(entry);
  if (range) return rangeToCidrs(entry, range[1]!, range[2]!);
  const slash = /^(\d+\.\d+\.\d+\.)(\d+)\/(\d+)$/.exec(entry);
  if (slash && Number(slash[3]) > 32) {
    // PKI Platform: 143.11.129.0/255 runs the last octet from 0 to 255.
    return rangeToCidrs(entry, `${slash[1]!}${slash[2]!}`, `${slash[1]!}${slash[3]!}`);
  }
  if (entry.includes('/')) return [checkedCidr(entry)];
  if (isIPv4(entry)) return [`${entry}/32`];
  if (isIPv6(entry)) return [`${canonicalIPv6(entry)}/128`];
  throw new AllowlistEntryError(entry, 'not an IP address, CIDR block, range (a-b), wildcard (10.1.*.*) or a.b.c.d/e range');
}

function wildcardToCidr(entry: string): string {
  const octets = entry.split('.');
  const fixed = octets.findIndex((o) => o === '*');
  const valid = octets.length === 4 && octets.slice(fixed).every((o) => o === '*') && octets.slice(0, fixed).every(isOctet);
  if (!valid) throw new AllowlistEntryError(entry, 'a wildcard replaces whole trailing octets, as in 10.1.*.*');
  return `${[...octets.slice(0, fixed), ...Array<string>(4 - fixed).fill('0')].join('.')}/${fixed * 8}`;
}

function checkedCidr(entry: string): string {
  if (!IPCIDR.isValidCIDR(entry)) throw new AllowlistEntryError(entry, 'not a valid CIDR block');
  const [address, prefix] = entry.split('/') as [string, string];
  const network = new IPCIDR(entry).start<string>();
  // 10.0.0.5/20 is most likely a typo or a PKI Platform range (10.0.0.5 to .20): refuse rather than guess.
  if (toBigInt(network) !== toBigInt(address)) {
    throw new AllowlistEntryError(
      entry,
      `host bits set: did you mean ${network}/${prefix}${isIPv4(address) && Number(prefix) > 0 ? ` or the range ${address}-${address.replace(/\d+$/, prefix)}` : ''}?`,
    );
  }
  return entry;
}

function rangeToCidrs(entry: string, first: string, last: string): string[] {
  const v4 = isIPv4(first) && isIPv4(last);
  if (!v4 && !(isIPv6(first) && isIPv6(last))) throw new AllowlistEntryError(entry, 'a range needs two addresses of the same family');
  let start = toBigInt(first);
  const end = toBigInt(last);
  if (start > end) throw new AllowlistEntryError(entry, 'the range ends before it starts');
  const bits = v4 ? 32n : 128n;
  // Largest aligned blocks first: the fewest CIDR blocks that cover exactly the range.
  const blocks: string[] = [];
  while (start <= end) {
    let size = 0n;
    while (size < bits && (start & ((1n << (size + 1n)) - 1n)) === 0n && start + (1n << (size + 1n)) - 1n <= end) size++;
    blocks.push(`${fromBigInt(start, v4)}/${bits - size}`);
    start += 1n << size;
  }
  return blocks;
}

function isOctet(text: string): boolean {
  return /^\d{1,3}$/.test(text) && Number(text) <= 255;
}

function toBigInt(address: string): bigint {
  if (isIPv4(address)) return address.split('.').reduce((acc, octet) => (acc << 8n) + BigInt(octet), 0n);
  return canonicalIPv6(address)
    .split(':')
    .reduce((acc, group) => (acc << 16n) + BigInt(`0x${group}`), 0n);
}

function fromBigInt(value: bigint, v4: boolean): string {
  if (v4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 255n)).join('.');
  return Array.from({ length: 8 }, (_, i) => ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':');
}

/** Eight full groups, with an embedded IPv4 tail turned into two groups. */
function canonicalIPv6(address: string): string {
  let text = address.toLowerCase();
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4Tail) {
    const n = toBigInt(v4Tail[1]!);
    text = text.slice(0, -v4Tail[1]!.length) + `${((n >> 16n) & 0xffffn).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}
