import * as asn1js from 'asn1js';
import { isPqcKeyType, PQC_KEY_TYPES, type KeyType } from './key-type.js';
import { checkDer, children, DerError, dottedOid, whatIsWrong, expectTags, readWhole, sequence, TAG, type TlvHeader } from './der.js';
import { EstError } from '../errors.js';

/** What a profile asks a CSR to contain (the profile's `csrattrs` setting). */
export interface CsrAttrsRequest {
  readonly key_type?: KeyType;
  readonly challenge_password: boolean;
  readonly oids: readonly string[];
}

const OID = {
  challengePassword: '1.2.840.113549.1.9.7',
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

const CURVE_OID: Partial<Record<KeyType, string>> = {
  p_256: '1.2.840.10045.3.1.7',
  p_384: '1.3.132.0.34',
  p_521: '1.3.132.0.35',
};

/**
 * Encodes a profile's CSR attributes (RFC 7030 §4.5.2):
 *
 *   CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
 *   AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
 *
 * A key type becomes an Attribute naming the key algorithm with the curve
 * (or RSA size) as its value, as in the RFC's example, followed by the
 * signature algorithm OID to use. Returns undefined when the profile asks for
 * nothing, which /csrattrs answers with 204 (RFC 7030 §4.5.2).
 */
export function encodeCsrAttrs(config: CsrAttrsRequest): Buffer | undefined {
  const items: asn1js.AsnType[] = [];
  if (config.challenge_password) items.push(oid(OID.challengePassword));
  if (config.key_type) items.push(...keyTypeItems(config.key_type));
  for (const extra of config.oids) items.push(oid(extra));
  if (items.length === 0) return undefined;
  return Buffer.from(new asn1js.Sequence({ value: items }).toBER(false));
}

function keyTypeItems(keyType: KeyType): asn1js.AsnType[] {
  const curve = CURVE_OID[keyType];
  if (curve) {
    const hash = keyType === 'p_384' ? OID.ecdsaWithSha384 : keyType === 'p_521' ? OID.ecdsaWithSha512 : OID.ecdsaWithSha256;
    return [attribute(OID.ecPublicKey, [oid(curve)]), oid(hash)];
  }
  if (keyType.startsWith('rsa_')) {
    const bits = Number(keyType.slice(4));
    return [attribute(OID.rsaEncryption, [new asn1js.Integer({ value: bits })]), oid(OID.sha256WithRsa)];
  }
  // ML-DSA and SLH-DSA: one OID names both the key and its signature (RFC 9881 §2).
  if (isPqcKeyType(keyType)) return [oid(PQC_KEY_TYPES[keyType].oid)];
  return [oid(keyType === 'ed_448' ? OID.ed448 : OID.ed25519)];
}

function oid(value: string): asn1js.ObjectIdentifier {
  return new asn1js.ObjectIdentifier({ value });
}

function attribute(type: string, values: asn1js.AsnType[]): asn1js.Sequence {
  return new asn1js.Sequence({ value: [oid(type), new asn1js.Set({ value: values })] });
}

/**
 * Both sources' attributes in one CsrAttrs (profile's first), each
 * AttrOrOID once. Undefined when neither asks for anything. An upstream's
 * CsrAttrs that is not DER of that shape is refused as the upstream's fault
 * (502 EST_UPSTREAM_INVALID), never read half-way.
 */
export function mergeCsrAttrs(...sources: readonly (Buffer | undefined)[]): Buffer | undefined {
  const seen = new Set<string>();
  const items: Buffer[] = [];
  for (const source of sources) {
    if (!source || source.length === 0) continue;
    for (const item of csrAttrsItems(source)) {
      const der = source.subarray(item.offset, item.end);
      const key = der.toString('hex');
      if (!seen.has(key)) {
        seen.add(key);
        items.push(der);
      }
    }
  }
  return items.length > 0 ? sequence(...items) : undefined;
}

/** CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID; AttrOrOID ::= CHOICE { oid, Attribute { type, values SET } } (RFC 7030 §4.5.2). */
function csrAttrsItems(source: Buffer): TlvHeader[] {
  try {
    const root = readWhole(source);
    checkDer(source, root);
    if (root.tag !== TAG.sequence) throw new DerError('CsrAttrs is not a SEQUENCE');
    const items = children(source, root);
    for (const item of items) {
      if (item.tag === TAG.oid) dottedOid(source, item);
      else if (item.tag !== TAG.sequence) throw new DerError('an AttrOrOID is neither an OID nor an Attribute');
      else dottedOid(source, expectTags(source, item, [TAG.oid, TAG.set])[0]!);
    }
    return items;
  } catch (cause) {
    throw new EstError('EST_UPSTREAM_INVALID', { reason: `upstream /csrattrs answer is not a CsrAttrs: ${whatIsWrong(cause)}`, cause });
  }
}
