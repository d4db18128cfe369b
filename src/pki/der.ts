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
 * Parsing untrusted input stays with the libraries.
 */

export const TAG = {
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  sequence: 0x30,
  set: 0x31,
  utcTime: 0x17,
  generalizedTime: 0x18,
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

/**
 * Reads a UTCTime or GeneralizedTime. RFC 5280 §4.1.2.5 asks for
 * YYMMDDHHMMSSZ (years 1950-2049) and YYYYMMDDHHMMSSZ; older manufacturer
 * certificates that OpenSSL still accepts also leave out the seconds, add
 * fractions or give an offset from UTC, so those forms are read too.
 */
export function readTime(der: Uint8Array, field: TlvHeader | undefined): Date {
  const text = field ? Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1', field.start, field.end) : '';
  const pattern =
    field?.tag === TAG.utcTime
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?()(Z|[+-]\d{4})$/
      : field?.tag === TAG.generalizedTime
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(\.\d+)?(Z|[+-]\d{4})$/
        : undefined;
  const match = pattern?.exec(text);
  if (!match) throw new Error('malformed DER: bad time');
  const [year, month, day, hour, minute, second = '0', fraction = '', zone = 'Z'] = match.slice(1);
  const fullYear = field!.tag === TAG.utcTime ? (Number(year) < 50 ? 2000 : 1900) + Number(year) : Number(year);
  const offsetMinutes = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  const utc = Date.UTC(
    fullYear,
    Number(month) - 1,
    Number(day),
    Number(hour),
    Number(minute),
    Number(second),
    Math.floor(Number(`0${fraction || '.0'}`) * 1000),
  );
  return new Date(utc - offsetMinutes * 60_000);
}

/** Header of one TLV. */
export interface TlvHeader {
  /** Offset of the tag: the whole TLV is [offset, end). */
  readonly offset: number;
  readonly tag: number;
  /** Offset of the content. */
  readonly start: number;
  /** Offset just past the content. */
  readonly end: number;
}

/**
 * Reads one TLV header, refusing anything that is not DER or runs past
 * `limit`: low-tag-number form, definite lengths of at most four bytes.
 * Safe on untrusted input (it only ever throws), so callers need not have
 * parsed the bytes with a library first.
 */
export function readTlv(der: Uint8Array, offset: number, limit = der.length): TlvHeader {
  if (offset + 2 > limit) throw new Error('malformed DER: truncated header');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('malformed DER: high tag numbers are not used here');
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new Error('malformed DER: indefinite length (BER)');
    if (count > 4 || start + count > limit) throw new Error('malformed DER: bad length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[start + i]!;
    start += count;
  }
  if (start + length > limit) throw new Error('malformed DER: content runs past its container');
  return { offset, tag, start, end: start + length };
}

/** The content TLVs of a constructed TLV (e.g. the fields of a SEQUENCE). */
export function children(der: Uint8Array, parent: TlvHeader = readTlv(der, 0)): TlvHeader[] {
  const result: TlvHeader[] = [];
  for (let offset = parent.start; offset < parent.end;) {
    const child = readTlv(der, offset, parent.end);
    result.push(child);
    offset = child.end;
  }
  return result;
}

/** Children of `parent`, which must have exactly the given tags in order (optional trailing ones may be missing). */
export function expectTags(der: Uint8Array, parent: TlvHeader, tags: readonly number[]): TlvHeader[] {
  const found = children(der, parent);
  if (found.length < tags.length || tags.some((tag, i) => found[i]!.tag !== tag)) throw new Error('malformed DER: unexpected structure');
  return found;
}

/** An OBJECT IDENTIFIER's content as dotted text (X.690 §8.19). */
export function dottedOid(der: Buffer, oid: TlvHeader): string {
  const arcs: number[] = [];
  let value = 0;
  for (let i = oid.start; i < oid.end; i++) {
    value = value * 128 + (der[i]! & 0x7f);
    if ((der[i]! & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else arcs.push(value);
      value = 0;
    }
  }
  return arcs.join('.');
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
