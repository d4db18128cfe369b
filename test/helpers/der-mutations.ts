import { sign, type KeyObject } from 'node:crypto';
import { children, readTlv, type TlvHeader } from '../../src/pki/der.js';
import { prng } from './prng.js';

/**
 * Seeded mutations of real DER for the differential test: structural edits
 * of one node of the tree (its length form, tag, children, content) with
 * every enclosing length recomputed, so the mutation reaches inner fields;
 * when the node is inside the signed part the structure is signed again, so
 * parsers get past the signature check and have to judge the field itself.
 * Byte-level edits (flips, truncations, insertions) of the whole encoding or
 * of the signed part (then re-signed) complete the set.
 */

type LengthForm = 'der' | 'long' | 'leading-zero' | 'indefinite' | 'huge' | 'plus-one' | 'minus-one';

interface DerNode {
  identifier: Buffer;
  /** Constructed values and OCTET/BIT STRINGs that hold DER (extension values, keys, signatures). */
  children?: DerNode[];
  /** Leading octets of an encapsulating BIT STRING (its unused-bits octet). */
  prefix?: Buffer;
  content?: Buffer;
  length: LengthForm;
}

/** The tree of a DER value, descending into OCTET and BIT STRINGs whose content is DER itself. */
function parse(der: Buffer, node: TlvHeader = readTlv(der, 0)): DerNode {
  const identifier = Buffer.from(der.subarray(node.offset, node.offset + 1));
  if (node.tag & 0x20) return { identifier, children: children(der, node).map((child) => parse(der, child)), length: 'der' };
  const content = Buffer.from(der.subarray(node.start, node.end));
  const skip = node.tag === 0x03 ? 1 : 0;
  if ((node.tag === 0x04 || (node.tag === 0x03 && content[0] === 0)) && content.length > skip + 1) {
    try {
      const inner = content.subarray(skip);
      const first = readTlv(inner, 0);
      if (first.end === inner.length && first.tag & 0x20)
        return { identifier, prefix: content.subarray(0, skip), children: [parse(inner, first)], length: 'der' };
    } catch {
      // not DER inside: an ordinary string
    }
  }
  return { identifier, content, length: 'der' };
}

function lengthOctets(length: number, form: LengthForm): Buffer {
  const minimal = (n: number): Buffer => {
    if (n < 0x80) return Buffer.from([n]);
    const octets: number[] = [];
    for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest & 0xff);
    return Buffer.from([0x80 | octets.length, ...octets]);
  };
  switch (form) {
    case 'der':
      return minimal(length);
    case 'long':
      return length < 0x80 ? Buffer.from([0x81, length]) : Buffer.concat([Buffer.from([minimal(length)[0]! + 1, 0]), minimal(length).subarray(1)]);
    case 'leading-zero':
      return Buffer.from([0x84, 0, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff]);
    case 'indefinite':
      return Buffer.from([0x80]);
    case 'huge':
      return Buffer.from([0x84, 0x7f, 0xff, 0xff, 0xf0]);
    case 'plus-one':
      return minimal(length + 1);
    case 'minus-one':
      return minimal(Math.max(0, length - 1));
  }
}

function serialize(node: DerNode): Buffer {
  const content = node.children ? Buffer.concat([node.prefix ?? Buffer.alloc(0), ...node.children.map(serialize)]) : node.content!;
  const parts = [node.identifier, lengthOctets(content.length, node.length), content];
  if (node.length === 'indefinite') parts.push(Buffer.from([0, 0]));
  return Buffer.concat(parts);
}

/** Every node with the path of child indexes that leads to it. */
function walk(node: DerNode, path: number[] = [], out: { node: DerNode; path: number[]; parent?: DerNode }[] = [], parent?: DerNode) {
  out.push({ node, path, parent });
  node.children?.forEach((child, i) => walk(child, [...path, i], out, node));
  return out;
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const TIMES = [
  '261301000000Z',
  '260230120000Z',
  '240229120000Z',
  '250229120000Z',
  '260431120000Z',
  '260101240000Z',
  '260101126000Z',
  '261231235960Z',
  '2601011200Z',
  '260101120000+0130',
  '260101120000-1300',
  '260101120000+1259',
  '260101120000.5Z',
  '260101120000z',
  '2601011200+0000',
  '491231235959Z',
  '500101000000Z',
  '20260101120000Z',
  '20260101120000.25Z',
  '202601011200Z',
  '202601011200.5Z',
  '20261301120000Z',
  '20260101120000+1300',
  '00000101000000Z',
];

/** A structural edit of one node; returns a name for the report. */
function mutateNode(random: () => number, node: DerNode, parent: DerNode | undefined, index: number): string {
  const tag = node.identifier[0]!;
  const options: (() => string)[] = [
    () => ((node.length = pick(random, ['long', 'leading-zero', 'indefinite', 'huge', 'plus-one', 'minus-one'] as const)), `length-${node.length}`),
    () => ((node.identifier = Buffer.from([Math.floor(random() * 256)])), 'tag-random'),
    () => ((node.identifier = Buffer.from([tag ^ 0x20])), 'tag-constructed-bit'),
    () => (
      (node.identifier = Buffer.from([
        pick(random, [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x1e, 0x30, 0x31, 0xa0, 0x80]),
      ])),
      'tag-other'
    ),
    () => ((node.identifier = Buffer.from([tag | 0x1f, 0x21])), 'tag-high-form'),
  ];
  if (parent?.children) {
    const siblings = parent.children;
    options.push(
      () => (siblings.splice(index, 1), 'drop-field'),
      () => (siblings.splice(index, 0, structuredClone(node)), 'duplicate-field'),
      () => (
        siblings.splice(
          index + 1,
          0,
          pick(random, [
            { identifier: Buffer.from([0x05]), content: Buffer.alloc(0), length: 'der' as const },
            { identifier: Buffer.from([0x02]), content: Buffer.from([1]), length: 'der' as const },
            { identifier: Buffer.from([0x30]), children: [], length: 'der' as const },
            { identifier: Buffer.from([0x0c]), content: Buffer.from('x'), length: 'der' as const },
          ]),
        ),
        'extra-field'
      ),
      () => {
        const other = Math.floor(random() * siblings.length);
        [siblings[index], siblings[other]] = [siblings[other]!, siblings[index]!];
        return 'swap-fields';
      },
    );
  }
  if (node.content) {
    const content = node.content;
    options.push(
      () => {
        if (content.length > 0) content[Math.floor(random() * content.length)]! ^= 1 << Math.floor(random() * 8);
        return 'content-bit';
      },
      () => ((node.content = content.subarray(0, Math.max(0, content.length - 1))), 'content-shorter'),
      () => ((node.content = Buffer.alloc(0)), 'content-empty'),
    );
    switch (tag) {
      case 0x02:
        options.push(() => ((node.content = Buffer.concat([Buffer.from([pick(random, [0x00, 0xff])]), content])), 'integer-padded'));
        break;
      case 0x01:
        options.push(() => ((node.content = Buffer.from([pick(random, [0x01, 0x7f, 0x00, 0xff])])), 'boolean-value'));
        break;
      case 0x06:
        options.push(
          () => {
            const at = Math.floor(random() * content.length);
            const starts = [...content.keys()].filter((i) => i === 0 || (content[i - 1]! & 0x80) === 0);
            const start = starts.find((i) => i >= at) ?? 0;
            node.content = Buffer.concat([content.subarray(0, start), Buffer.from([0x80]), content.subarray(start)]);
            return 'oid-padded';
          },
          () => ((node.content = Buffer.concat([content.subarray(0, -1), Buffer.from([content.at(-1)! | 0x80])])), 'oid-truncated-arc'),
        );
        break;
      case 0x03:
        options.push(() => ((node.content = Buffer.concat([Buffer.from([Math.floor(random() * 9)]), content.subarray(1)])), 'bitstring-unused'));
        break;
      case 0x17:
      case 0x18:
        options.push(() => ((node.content = Buffer.from(pick(random, TIMES), 'latin1')), 'time'));
        break;
      case 0x0c:
      case 0x13:
      case 0x1e:
        options.push(
          () => ((node.content = Buffer.concat([content, Buffer.from(pick(random, ['c328', 'eda080', 'f4908080', '00', 'e282']), 'hex')])), 'string-bytes'),
        );
        break;
    }
  }
  if (node.children && node.children.length > 0 && !node.prefix) {
    options.push(() => ((node.children = [...node.children!].reverse()), 'reverse-fields'));
  }
  return pick(random, options)();
}

/** How to sign a mutated signed part again: the key and the digest (null for EdDSA), or a signing function (a post-quantum key, signed with noble). */
export type Signer = { readonly key: KeyObject; readonly hash: string | null } | { readonly sign: (data: Uint8Array) => Uint8Array };

export interface Mutation {
  readonly seed: number;
  readonly kind: string;
  readonly der: Buffer;
}

/**
 * One reproducible mutation of `original` (a signed structure:
 * SEQUENCE { signed, algorithm, signature BIT STRING }) from `seed`.
 */
export function mutate(original: Buffer, signer: Signer, seed: number): Mutation {
  const random = prng(seed);
  const roll = random();
  if (roll < 0.15) {
    // Byte-level edits of the whole encoding (the signature is not renewed).
    const der = Buffer.from(original);
    const at = Math.floor(random() * der.length);
    const kind = pick(random, ['flip', 'truncate', 'insert'] as const);
    if (kind === 'flip') der[at]! ^= 1 << Math.floor(random() * 8);
    if (kind === 'truncate') return { seed, kind: 'bytes-truncate', der: der.subarray(0, at) };
    if (kind === 'insert')
      return { seed, kind: 'bytes-insert', der: Buffer.concat([der.subarray(0, at), randomBytes(random, 1 + Math.floor(random() * 3)), der.subarray(at)]) };
    return { seed, kind: 'bytes-flip', der };
  }
  const tree = parse(original);
  if (roll < 0.3) {
    // Byte-level edits of the signed part, signed again.
    const signed = serialize(tree.children![0]!);
    const at = Math.floor(random() * signed.length);
    const kind = pick(random, ['flip', 'truncate', 'insert'] as const);
    let bytes = Buffer.from(signed);
    if (kind === 'flip') bytes[at]! ^= 1 << Math.floor(random() * 8);
    if (kind === 'truncate') bytes = bytes.subarray(0, Math.max(1, at));
    if (kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), randomBytes(random, 1 + Math.floor(random() * 3)), bytes.subarray(at)]);
    return { seed, kind: `resigned-bytes-${kind}`, der: assemble(tree, bytes, signer) };
  }
  const nodes = walk(tree);
  // Inner fields more often than the envelope: that is where parsers differ.
  const inner = nodes.filter((entry) => entry.path[0] === 0 && entry.path.length > 1);
  const target = roll < 0.85 && inner.length > 0 ? pick(random, inner) : pick(random, nodes);
  const kind = mutateNode(random, target.node, target.parent, target.path.at(-1) ?? 0);
  const resign = target.path[0] === 0 && target.path.length >= 1 && tree.children?.[0] && tree.children.length === 3;
  return { seed, kind: `${resign ? 'resigned-' : ''}${kind}`, der: resign ? assemble(tree, serialize(tree.children![0]!), signer) : serialize(tree) };
}

function randomBytes(random: () => number, count: number): Buffer {
  return Buffer.from(Array.from({ length: count }, () => Math.floor(random() * 256)));
}

/** SEQUENCE { signed (as given), algorithm, signature of `signed` } with DER lengths around it. */
function assemble(tree: DerNode, signed: Buffer, signer: Signer): Buffer {
  const signature = 'sign' in signer ? Buffer.from(signer.sign(signed)) : sign(signer.hash, signed, signer.key);
  const algorithm = serialize(tree.children![1]!);
  const bits = Buffer.concat([Buffer.from([0x03]), lengthOctets(signature.length + 1, 'der'), Buffer.from([0]), signature]);
  const content = Buffer.concat([signed, algorithm, bits]);
  return Buffer.concat([Buffer.from([0x30]), lengthOctets(content.length, 'der'), content]);
}
