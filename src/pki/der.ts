/**
 * A minimal DER *encoder* (X.690 §10) for the two structures est-ra builds on
 * every enrollment: the TBSCertificate and the certs-only SignedData. Both
 * are mostly fixed bytes around DER that already exists (the CSR's subject
 * and key, the issued certificate), so they are assembled by concatenation.
 *
 * Why not asn1js here: `npm run bench` measured @peculiar/x509's certificate
 * generator at ~2.1 ms and pkijs's certs-only build at ~1.1 ms of main-thread
 * CPU per enrollment (asn1js object trees), against a few microseconds for
 * concatenation; together they were the largest cost on the request path.
 * The reading half below is strict DER, held to Bouncy Castle and OpenSSL
 * by test/unit/differential.spec.ts.
 */

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  objectDescriptor: 0x07,
  enumerated: 0x0a,
  utf8String: 0x0c,
  relativeOid: 0x0d,
  sequence: 0x30,
  set: 0x31,
  numericString: 0x12,
  printableString: 0x13,
  teletexString: 0x14,
  videotexString: 0x15,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  graphicString: 0x19,
  visibleString: 0x1a,
  generalString: 0x1b,
  universalString: 0x1c,
  bmpString: 0x1e,
} as const;

/** Tag, definite length, content. */
export function tlv(tag: number, ...content: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export const sequence = (...content: readonly Uint8Array[]): Buffer => tlv(TAG.sequence, ...content);
export const set = (...content: readonly Uint8Array[]): Buffer => tlv(TAG.set, ...content);
/** [n] constructed, context-specific: an EXPLICIT wrapper, or the IMPLICIT tag of a SET/SEQUENCE. */
export const contextTag = (n: number, ...content: readonly Uint8Array[]): Buffer => tlv(0xa0 | n, ...content);
export const octetString = (content: Uint8Array): Buffer => tlv(TAG.octetString, content);
export const bitString = (content: Uint8Array): Buffer => tlv(TAG.bitString, Buffer.from([0]), content);

/** INTEGER from unsigned big-endian magnitude bytes (adds the 0x00 that keeps it positive). */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return tlv(TAG.integer, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function smallInteger(value: number): Buffer {
  return unsignedInteger(Buffer.from([value]));
}

export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes: number[] = [];
  const push = (arc: number): void => {
    const groups: number[] = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) groups.unshift((rest & 0x7f) | 0x80);
    bytes.push(...groups);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(TAG.oid, Buffer.from(bytes));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always UTC to the second. */
export function time(date: Date): Buffer {
  const iso = date.toISOString();
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return date.getUTCFullYear() < 2050 ? tlv(TAG.utcTime, Buffer.from(digits.slice(2), 'latin1')) : tlv(TAG.generalizedTime, Buffer.from(digits, 'latin1'));
}

/*
 * Reading untrusted DER (X.690 §10): every reader below refuses what is not
 * DER instead of guessing, and only ever throws DerError, so a caller maps
 * one error type to its refusal (400 from a device, 502 from an upstream).
 * What "DER" means here was settled by the differential test
 * (test/unit/differential.spec.ts), which holds these readers to Bouncy
 * Castle's DER re-encoding and OpenSSL's verdicts on 10 000+ mutations.
 */

/** Malformed DER: the message is one line, safe to log (never the bytes). */
export class DerError extends Error {
  constructor(message: string) {
    super(`malformed DER: ${message}`);
    this.name = 'DerError';
  }
}

/** The one-line reason of a DER refusal (never the bytes); anything else is not the client's to read. */
export function whatIsWrong(cause: unknown): string {
  return cause instanceof DerError ? cause.message.replace(/^malformed DER: /, '') : 'unreadable structure';
}

function fail(message: string): never {
  throw new DerError(message);
}

/** Four length octets address 4 GiB: far past any body est-ra accepts, and enough to refuse a "huge length" early. */
const MAX_LENGTH_OCTETS = 4;
/** Nesting est-ra follows; certificates and CSRs use fewer than 10 levels. */
const MAX_DEPTH = 64;

/** Header of one TLV. */
export interface TlvHeader {
  /** Offset of the tag: the whole TLV is [offset, end). */
  readonly offset: number;
  /** The identifier octet (class, constructed bit, low tag number or 0x1f for the high form). */
  readonly tag: number;
  /** Offset of the content. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
}

/**
 * Reads one TLV header as DER allows it (X.690 §8.1, §10.1): a definite
 * length in the fewest octets (short form below 128, no leading zero
 * octet, at most four octets), content inside `limit`. Indefinite lengths
 * (BER) are refused. The high tag number form is read (minimal, >= 31),
 * as AlgorithmIdentifier parameters may carry any tag.
 */
export function readTlv(der: Uint8Array, offset: number, limit = der.length): TlvHeader {
  if (offset + 2 > limit) fail('truncated header');
  const tag = der[offset]!;
  let position = offset + 1;
  if ((tag & 0x1f) === 0x1f) {
    if (der[position] === 0x80) fail('tag number with a leading zero group');
    let number = 0;
    for (let octets = 0; ; octets++) {
      if (position >= limit || octets >= 4) fail('bad tag number');
      const octet = der[position++]!;
      number = number * 128 + (octet & 0x7f);
      if ((octet & 0x80) === 0) break;
    }
    if (number < 31) fail('high tag number form for a low tag number');
  }
  if (position >= limit) fail('truncated header');
  let length = der[position++]!;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) fail('indefinite length (BER)');
    if (count > MAX_LENGTH_OCTETS) fail('length field too long');
    if (position + count > limit) fail('truncated length');
    if (der[position] === 0) fail('non-minimal length (leading zero octet)');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[position + i]!;
    position += count;
    if (length < 0x80) fail('non-minimal length (long form below 128)');
  }
  if (position + length > limit) fail('content runs past its container');
  return { offset, tag, start: position, end: position + length };
}

/** The one TLV that is all of `der`: no bytes after it (X.690 §10 encodes one value). */
export function readWhole(der: Uint8Array): TlvHeader {
  const root = readTlv(der, 0);
  if (root.end !== der.length) fail('bytes after the structure');
  return root;
}

/** The content TLVs of a constructed TLV (e.g. the fields of a SEQUENCE). */
export function children(der: Uint8Array, parent: TlvHeader = readTlv(der, 0)): TlvHeader[] {
  if ((parent.tag & 0x20) === 0) fail('primitive where a constructed value is expected');
  const result: TlvHeader[] = [];
  for (let offset = parent.start; offset < parent.end;) {
    const child = readTlv(der, offset, parent.end);
    result.push(child);
    offset = child.end;
  }
  return result;
}

/**
 * Children of `parent` with exactly these tags in order; the last
 * `optional` of them may be absent, nothing else may follow (the fields of
 * a SEQUENCE as the RFC's module defines them, no extra fields).
 */
export function expectTags(der: Uint8Array, parent: TlvHeader, tags: readonly number[], optional = 0): TlvHeader[] {
  const found = children(der, parent);
  if (found.length < tags.length - optional || found.length > tags.length || found.some((field, i) => field.tag !== tags[i])) {
    fail('unexpected structure');
  }
  return found;
}

/**
 * Checks a whole TLV tree as Bouncy Castle's DER re-encoding and typed
 * readers see it: constructed only for SEQUENCE, SET and tagged values
 * (constructed strings are BER), SET OF sorted (X.690 §11.6), and every
 * universal primitive in its DER form: BOOLEAN 00/FF, INTEGER and
 * ENUMERATED minimal, BIT STRING with valid and zero unused bits, NULL
 * empty, OBJECT IDENTIFIER minimal, BMPString of whole characters.
 * Universal types outside that list (REAL, EMBEDDED PDV, ...) are refused.
 * Content of tagged primitives and strings is the field's business.
 */
export function checkDer(der: Uint8Array, node: TlvHeader, depth = 0): void {
  if (depth > MAX_DEPTH) fail('nested too deeply');
  const universal = (node.tag & 0xc0) === 0;
  if (node.tag & 0x20) {
    if (universal && node.tag !== TAG.sequence && node.tag !== TAG.set) fail('constructed encoding of a primitive type (BER)');
    let previous: TlvHeader | undefined;
    for (const child of children(der, node)) {
      checkDer(der, child, depth + 1);
      if (node.tag === TAG.set && previous && compareSetElements(der, previous, child) > 0) fail('SET OF not in DER order');
      previous = child;
    }
    return;
  }
  if (!universal) return;
  const length = node.end - node.start;
  switch (node.tag) {
    case TAG.boolean:
      readBoolean(der, node);
      return;
    case TAG.integer:
    case TAG.enumerated:
      checkInteger(der, node);
      return;
    case TAG.bitString:
      checkBitString(der, node);
      return;
    case TAG.null:
      if (length !== 0) fail('NULL with content');
      return;
    case TAG.oid:
    case TAG.relativeOid:
      checkOid(der, node);
      return;
    case TAG.bmpString:
      if (length % 2 !== 0) fail('BMPString of half a character');
      return;
    case TAG.utcTime:
      if (length < 2) fail('UTCTime too short');
      return;
    case TAG.generalizedTime:
      if (length < 4) fail('GeneralizedTime too short');
      return;
    case TAG.octetString:
    case TAG.objectDescriptor:
    case TAG.utf8String:
    case TAG.numericString:
    case TAG.printableString:
    case TAG.teletexString:
    case TAG.videotexString:
    case TAG.ia5String:
    case TAG.graphicString:
    case TAG.visibleString:
    case TAG.generalString:
    case TAG.universalString:
      return;
    default:
      fail(`universal tag ${node.tag} is not used in certificates or requests`);
  }
}

/** DER order of SET OF elements: their encodings compared octet by octet, the constructed bit of the tag aside (as Bouncy Castle sorts). */
function compareSetElements(der: Uint8Array, a: TlvHeader, b: TlvHeader): number {
  const tagA = der[a.offset]! & ~0x20;
  const tagB = der[b.offset]! & ~0x20;
  if (tagA !== tagB) return tagA - tagB;
  const common = Math.min(a.end - a.offset, b.end - b.offset);
  for (let i = 1; i < common; i++) {
    const difference = der[a.offset + i]! - der[b.offset + i]!;
    if (difference !== 0) return difference;
  }
  return 0;
}

/** BOOLEAN in DER: one octet, 0x00 or 0xFF (X.690 §11.1). */
export function readBoolean(der: Uint8Array, node: TlvHeader): boolean {
  if (node.tag !== TAG.boolean || node.end - node.start !== 1) fail('BOOLEAN is not one octet');
  const value = der[node.start]!;
  if (value !== 0x00 && value !== 0xff) fail('BOOLEAN is neither 00 nor FF');
  return value === 0xff;
}

/** INTEGER in the fewest octets (X.690 §8.3.2). */
export function checkInteger(der: Uint8Array, node: TlvHeader): void {
  if (node.end === node.start) fail('empty INTEGER');
  if (node.end - node.start > 1) {
    const [first, second] = [der[node.start]!, der[node.start + 1]!];
    if ((first === 0x00 && second < 0x80) || (first === 0xff && second >= 0x80)) fail('non-minimal INTEGER');
  }
}

/** A small non-negative INTEGER (a version, a pathLenConstraint). */
export function readSmallInteger(der: Uint8Array, node: TlvHeader): number {
  if (node.tag !== TAG.integer) fail('INTEGER expected');
  checkInteger(der, node);
  if (der[node.start]! & 0x80) return -1;
  let value = 0;
  for (let i = node.start; i < node.end; i++) value = value * 256 + der[i]!;
  return value;
}

/** BIT STRING: an unused-bits octet 0-7 (0 when empty), unused bits zero (X.690 §11.2.1). */
export function checkBitString(der: Uint8Array, node: TlvHeader): void {
  if (node.end === node.start) fail('BIT STRING without its unused-bits octet');
  const unused = der[node.start]!;
  if (unused > 7 || (unused > 0 && node.end - node.start === 1)) fail('bad unused-bits count');
  if (unused > 0 && (der[node.end - 1]! & ((1 << unused) - 1)) !== 0) fail('unused bits of a BIT STRING are not zero');
}

/** OBJECT IDENTIFIER content: non-empty, each sub-identifier minimal (no leading 0x80), the last one complete (X.690 §8.19.2). */
export function checkOid(der: Uint8Array, node: TlvHeader): void {
  if (node.end === node.start) fail('empty OBJECT IDENTIFIER');
  let subidentifierStart = true;
  for (let i = node.start; i < node.end; i++) {
    if (subidentifierStart && der[i] === 0x80) fail('OBJECT IDENTIFIER with a padded sub-identifier');
    subidentifierStart = (der[i]! & 0x80) === 0;
  }
  if (!subidentifierStart) fail('OBJECT IDENTIFIER with a truncated last sub-identifier');
}

/** An OBJECT IDENTIFIER's content as dotted text (X.690 §8.19); throws on one that is not DER. */
export function dottedOid(der: Uint8Array, oid: TlvHeader): string {
  if (oid.tag !== TAG.oid) fail('OBJECT IDENTIFIER expected');
  checkOid(der, oid);
  const arcs: (number | bigint)[] = [];
  let value = 0;
  let big: bigint | undefined; // past 2^46 a sub-identifier is kept exactly as a BigInt
  for (let i = oid.start; i < oid.end; i++) {
    const bits = der[i]! & 0x7f;
    if (big !== undefined) big = (big << 7n) | BigInt(bits);
    else if (value >= 2 ** 46) big = (BigInt(value) << 7n) | BigInt(bits);
    else value = value * 128 + bits;
    if ((der[i]! & 0x80) === 0) {
      if (arcs.length > 0) arcs.push(big ?? value);
      else if (big === undefined && value < 80) arcs.push(Math.floor(value / 40), value % 40);
      else arcs.push(2, big === undefined ? value - 80 : big - 80n);
      value = 0;
      big = undefined;
    }
  }
  return arcs.join('.');
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;

/**
 * Reads a UTCTime or GeneralizedTime as OpenSSL does (ossl_asn1_time_to_tm,
 * OpenSSL 3.0, the parser behind its certificate dates): RFC 5280 §4.1.2.5
 * asks for YYMMDDHHMMSSZ (years 1950-2049) and YYYYMMDDHHMMSSZ, and older
 * manufacturer certificates that OpenSSL still accepts leave out the
 * seconds (UTCTime only), add a fraction after the seconds (GeneralizedTime) or give an
 * offset of at most 12:59 from UTC; those forms are read too. Every field
 * is range-checked (month 1-12, the day within its month, hour 0-23,
 * minute and second 0-59), so "month 13" is refused as OpenSSL refuses it.
 */
export function readTime(der: Uint8Array, field: TlvHeader | undefined): Date {
  const utc = field?.tag === TAG.utcTime;
  if (!field || (!utc && field.tag !== TAG.generalizedTime)) fail('a time must be UTCTime or GeneralizedTime');
  const text = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1', field.start, field.end);
  const match = (
    utc
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:(\d{2})())?(?:Z|([+-])(\d{2})(\d{2}))$/
      : // GeneralizedTime always has its seconds (X.690 §11.7; Bouncy Castle refuses it otherwise, and the
        // differential test found a mutated certificate where est-ra and the oracle disagreed on exactly this).
        /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2})(\d{2}))$/
  ).exec(text);
  if (!match) fail('bad time');
  // Optional groups are undefined at run time whatever the RegExpExecArray type says.
  const group = (i: number): string | undefined => (match as (string | undefined)[])[i];
  const number = (i: number): number => Number(group(i) ?? 0);
  const [year2, month, day, hour, minute, second, offsetHours, offsetMinutes] = [1, 2, 3, 4, 5, 6, 9, 10].map(number) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const [fraction, sign] = [group(7), group(8)];
  const year = utc ? (year2 < 50 ? 2000 : 1900) + year2 : year2;
  const monthDays = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (month < 1 || month > 12 || day < 1 || day > monthDays! || hour > 23 || minute > 59 || second > 59 || offsetHours > 12 || offsetMinutes > 59) {
    fail('time out of range');
  }
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, Math.floor(Number(`0.${fraction ?? '0'}`) * 1000));
  const offset = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  return new Date(date.getTime() - offset * 60_000);
}

/** The bytes of a whole TLV (tag, length and content), as encoded. */
export function sliceTlv(der: Buffer, field: TlvHeader): Buffer {
  return der.subarray(field.offset, field.end);
}

/**
 * The Extension (RFC 5280 §4.1, the whole SEQUENCE as encoded) with this OID
 * among `extensions`, the Extension TLVs of a certificate or of a CSR's
 * extensionRequest; undefined when none has it.
 */
export function extensionByOid(der: Buffer, extensions: readonly TlvHeader[], oid: string): Buffer | undefined {
  for (const extension of extensions) {
    const [id] = children(der, extension);
    if (id?.tag === TAG.oid && dottedOid(der, id) === oid) return sliceTlv(der, extension);
  }
  return undefined;
}
