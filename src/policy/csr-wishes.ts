import { KEY_TYPES, type KeyType } from '../pki/key-type.js';
import { KEY_TYPE_WISHES, OID, type CsrWishes } from '../pki/csrattrs.js';
import { SIGNATURE_ALGORITHMS, type SignatureAlgorithmName } from '../pki/certificate-signer.js';
import { children, dottedOid, readTlv } from '../pki/der.js';
import { ENCODING_ORDER, SAN_TYPES, SUBJECT_ATTRIBUTES, type NameValue, type SanType, type SubjectAttribute } from '../pki/names.js';
import type { NameSource } from './name-policy.js';

/** The profile settings the wishes come from, by their configuration names (config/schema.ts). */
/**
 * What /csrattrs asks for, derived from the profile's own rules so it can
 * never ask for what the profile then refuses (RFC 7030 §4.5, RFC 9908).
 * The `csrattrs:` section only adds to it, and load refuses an addition that
 * contradicts the profile (csrAttrsContradictions below).
 */
export interface CsrWishSettings {
  readonly allowed_key_types: readonly KeyType[];
  readonly signature_algorithm: 'match_issuer' | readonly SignatureAlgorithmName[];
  readonly channel_binding: boolean;
  readonly subject: Readonly<
    Record<
      SubjectAttribute,
      { readonly enabled: boolean; readonly optional: boolean; readonly sources: readonly NameSource[]; readonly value: readonly string[] }
    >
  >;
  readonly san: Readonly<
    Record<SanType, { readonly include: 'no' | 'optional' | 'required'; readonly sources: readonly NameSource[]; readonly value: readonly string[] }>
  >;
  readonly csrattrs: { readonly key_type?: KeyType; readonly challenge_password: boolean; readonly oids: readonly string[] };
}

/** The key algorithm each signature algorithm needs. */
const SIGNATURE_KEY_ALGORITHM: Readonly<Record<string, string>> = {
  [OID.ecdsaWithSha256]: OID.ecPublicKey,
  [OID.ecdsaWithSha384]: OID.ecPublicKey,
  [OID.ecdsaWithSha512]: OID.ecPublicKey,
  [OID.sha256WithRsa]: OID.rsaEncryption,
  [OID.sha384WithRsa]: OID.rsaEncryption,
  [OID.sha512WithRsa]: OID.rsaEncryption,
  [OID.ed25519]: OID.ed25519,
};

/** The OID of one of the profile's signature_algorithm names, read from its AlgorithmIdentifier (one table, certificate-signer.ts). */
function signatureOid(name: SignatureAlgorithmName): string {
  const der = SIGNATURE_ALGORITHMS[name].algorithmIdentifier;
  return dottedOid(der, children(der, readTlv(der, 0))[0]!);
}

/** The value comes from the profile (fixed_value first), or the CSR must carry one (csr first and required). */
const fixedValues = (rule: { readonly sources: readonly NameSource[]; readonly value: readonly string[] }): readonly string[] =>
  rule.sources[0] === 'fixed_value' ? rule.value : [];

export function csrWishesOf(settings: CsrWishSettings): CsrWishes {
  // csrattrs.key_type picks one of the allowed types (RFC 9908 §3.2 asks for exactly one key Attribute); else every allowed type.
  const keyTypes = settings.csrattrs.key_type ? [settings.csrattrs.key_type] : settings.allowed_key_types;
  const algorithms = new Set(keyTypes.map((type) => KEY_TYPE_WISHES[type].algorithm));
  const listed =
    settings.signature_algorithm === 'match_issuer'
      ? []
      : settings.signature_algorithm.map(signatureOid).filter((oid) => oid !== OID.ed25519 && algorithms.has(SIGNATURE_KEY_ALGORITHM[oid] ?? ''));
  const signatureAlgorithms = listed.length > 0 ? listed : keyTypes.flatMap((type) => KEY_TYPE_WISHES[type].signature ?? []);

  const subject: { kind: SubjectAttribute; value?: string }[] = [];
  for (const kind of ENCODING_ORDER) {
    const rule = settings.subject[kind];
    if (!rule.enabled) continue;
    const fixed = fixedValues(rule);
    if (fixed.length > 0) subject.push(...fixed.map((value) => ({ kind, value })));
    else if (!rule.optional && rule.sources[0] === 'csr') subject.push({ kind });
  }

  const fixed: NameValue<SanType>[] = [];
  const toFill: SanType[] = [];
  for (const type of SAN_TYPES) {
    const rule = settings.san[type];
    if (rule.include === 'no') continue;
    const values = fixedValues(rule);
    if (values.length > 0) fixed.push(...values.map((value) => ({ kind: type, value })));
    else if (rule.include === 'required' && rule.sources[0] === 'csr') toFill.push(type);
  }

  return {
    keyTypes: [...new Set(keyTypes)],
    signatureAlgorithms: [...new Set(signatureAlgorithms)],
    challengePassword: settings.channel_binding || settings.csrattrs.challenge_password,
    subject,
    san: fixed.length > 0 || toFill.length > 0 ? { fixed, toFill } : undefined,
    extraOids: settings.csrattrs.oids,
  };
}

const SUBJECT_BY_OID = new Map<string, SubjectAttribute>(Object.entries(SUBJECT_ATTRIBUTES).map(([name, oid]) => [oid, name as SubjectAttribute]));

/**
 * What in a profile's `csrattrs:` section contradicts the rest of the
 * profile, each naming its field: a key type or key algorithm it does not
 * allow, a subject attribute it disables, a SAN when it allows none, a
 * signature algorithm for a key it refuses. Config load refuses these:
 * devices following /csrattrs would build CSRs the profile then refuses
 * with 403, a failure seen only at enrollment, across the fleet.
 */
export function csrAttrsContradictions(at: string, settings: CsrWishSettings): string[] {
  const problems: string[] = [];
  const allowed = settings.allowed_key_types;
  const keyType = settings.csrattrs.key_type;
  if (keyType !== undefined && !allowed.includes(keyType)) {
    problems.push(`${at}.csrattrs.key_type: ${keyType} is not in allowed_key_types (${allowed.join(', ')}); /csrattrs would ask for a key the profile refuses`);
  }
  const allowedAlgorithms = new Set(allowed.map((type) => KEY_TYPE_WISHES[type].algorithm));
  settings.csrattrs.oids.forEach((oid, i) => {
    const field = `${at}.csrattrs.oids.${i}`;
    const keyTypesOf = (algorithm: string): string[] => KEY_TYPES.filter((type) => KEY_TYPE_WISHES[type].algorithm === algorithm);
    if (keyTypesOf(oid).length > 0 && !allowedAlgorithms.has(oid)) {
      problems.push(`${field}: ${oid} asks for a key type the profile does not allow (${keyTypesOf(oid).join(', ')} not in allowed_key_types)`);
    }
    const needs = SIGNATURE_KEY_ALGORITHM[oid];
    if (needs !== undefined && needs !== oid && !allowedAlgorithms.has(needs)) {
      problems.push(`${field}: ${oid} is a signature for ${keyTypesOf(needs).join(', ')} keys, none of which allowed_key_types allows`);
    }
    const attribute = SUBJECT_BY_OID.get(oid);
    if (attribute !== undefined && !settings.subject[attribute].enabled) {
      problems.push(`${field}: ${oid} asks for subject.${attribute}, which the profile disables (subject.${attribute}.enabled: false)`);
    }
    if (oid === OID.subjectAltName && SAN_TYPES.every((type) => settings.san[type].include === 'no')) {
      problems.push(`${field}: ${oid} asks for a subjectAltName, and every san.* type of the profile is include: no`);
    }
  });
  return problems;
}
