import { EstError } from '../errors.js';
import { compileAllowlist } from '../auth/allowlist.js';
import { SAN_TYPES, SUBJECT_ATTRIBUTE_NAMES, type IssuedNames, type Names, type NameValue, type SanType, type SubjectAttribute } from '../pki/names.js';

/**
 * What a certificate may say (DigiCert certificate profile `subject.*` and
 * `san.*`): for each subject attribute and SAN type, whether it is allowed,
 * where its value comes from and which values are acceptable. A passcode
 * proves who may enroll; this decides what the certificate may say.
 */

/**
 * Where a value comes from (DigiCert's `sources`), tried in the order listed:
 * `csr` the device's value (checked against the patterns), `fixed_value` the
 * profile's `value`, `user_supplied` the values registered with the
 * credential (a passcode's `--value`, or the bootstrap certificate's subject).
 */
export type NameSource = 'csr' | 'fixed_value' | 'user_supplied';

export interface SubjectAttributeRule {
  /** false: the certificate never carries it and a CSR asking for it is refused. */
  readonly enabled: boolean;
  /** false: the certificate must carry it. */
  readonly optional: boolean;
  readonly sources: readonly NameSource[];
  /** The fixed value(s), for `fixed_value`. */
  readonly value: readonly string[];
  /** Acceptable CSR values: globs (`*` is one or more characters other than `.`, `*` and `@`) or `/regular expressions/`. Empty: any. */
  readonly patterns: readonly string[];
}

export interface SanRule {
  /** DigiCert's `include`: no · optional · required (at least one). */
  readonly include: 'no' | 'optional' | 'required';
  readonly sources: readonly NameSource[];
  readonly value: readonly string[];
  /** Globs or regular expressions as above; for ip_address, addresses and blocks in every allowlist notation. */
  readonly patterns: readonly string[];
  /** dns_name only: the common name is also issued as a DNS name (DigiCert's `auto_include_cn`). */
  readonly autoIncludeCn?: boolean;
}

export interface NamePolicyConfig {
  readonly subject: Readonly<Record<SubjectAttribute, SubjectAttributeRule>>;
  readonly san: Readonly<Record<SanType, SanRule>>;
}

/** Values registered with a credential, keyed `common_name`, `organization_unit`, `san.dns_name`, ... */
export type RegisteredValues = Readonly<Record<string, readonly string[]>>;

/** Attributes that may repeat in a subject; every other one appears at most once. */
const MULTI_VALUED: ReadonlySet<SubjectAttribute> = new Set(['organization_unit', 'street_address']);
/** DNS names and email domains compare without case (RFC 4343, RFC 5321 §2.4). */
const CASE_INSENSITIVE: ReadonlySet<string> = new Set(['dns_name', 'email']);

const refuse = (reason: string): EstError => new EstError('EST_NAME_NOT_ALLOWED', { reason });

/** A compiled name policy: decide() is called once per enrollment. */
export class NamePolicy {
  private readonly matchers: ReadonlyMap<string, (value: string) => boolean>;

  constructor(private readonly config: NamePolicyConfig) {
    const matchers = new Map<string, (value: string) => boolean>();
    for (const attribute of SUBJECT_ATTRIBUTE_NAMES) matchers.set(`subject.${attribute}`, compilePatterns(config.subject[attribute].patterns, false));
    // IP SANs take every notation allowed_ip_addresses takes (auth/allowlist.ts); no patterns: any address.
    const addresses = compileAllowlist(config.san.ip_address.patterns);
    for (const type of SAN_TYPES) {
      const rule = config.san[type];
      matchers.set(`san.${type}`, type === 'ip_address' ? (value) => addresses.allows(value) : compilePatterns(rule.patterns, CASE_INSENSITIVE.has(type)));
    }
    this.matchers = matchers;
  }

  /**
   * The names the certificate will carry, or a 403 that names the rule the
   * CSR breaks, e.g. `subject.organization_name is fixed to ACME; the CSR asks
   * for Evil Corp`. Nothing the CSR asks for escapes the rules: an attribute
   * or SAN type the profile does not name is refused, not dropped. The
   * subject is decided first (a SAN may take its common name);
   * `beforeSubjectAltName` marks the boundary for `est-ra simulate`.
   */
  decide(requested: Names, registered: RegisteredValues = {}, beforeSubjectAltName?: () => void): IssuedNames {
    for (const entry of requested.subject) {
      if (entry.kind.startsWith('other:')) throw refuse(`subject attribute ${entry.kind.slice(6)} is not allowed by profile; the CSR asks for ${entry.value}`);
    }
    const subject: NameValue<SubjectAttribute>[] = [];
    for (const attribute of SUBJECT_ATTRIBUTE_NAMES) {
      const rule = this.config.subject[attribute];
      const asked = requested.subject.filter((e) => e.kind === attribute).map((e) => e.value);
      const key = `subject.${attribute}`;
      if (!rule.enabled) {
        if (asked.length > 0) throw refuse(`${key} is not allowed by profile; the CSR asks for ${asked[0]!}`);
        continue;
      }
      if (asked.length > 1 && !MULTI_VALUED.has(attribute)) throw refuse(`${key} may appear once; the CSR asks for ${asked.join(', ')}`);
      const values = this.resolve(key, rule, asked, registered[attribute] ?? registered[key]);
      if (values.length === 0 && !rule.optional) throw refuse(`${key} is required; ${requiredHint(rule)}`);
      for (const value of values) subject.push({ kind: attribute, value });
    }
    beforeSubjectAltName?.();
    for (const entry of requested.san) {
      if (entry.kind.startsWith('other:')) throw refuse(`subjectAltName ${entry.kind.slice(6)} entries are not allowed by profile`);
    }
    const san: NameValue<SanType>[] = [];
    for (const type of SAN_TYPES) {
      const rule = this.config.san[type];
      const asked = requested.san.filter((e) => e.kind === type).map((e) => e.value);
      const key = `san.${type}`;
      if (rule.include === 'no') {
        if (asked.length > 0) throw refuse(`${key} is not allowed by profile; the CSR asks for ${asked[0]!}`);
        continue;
      }
      const values = [...this.resolve(key, rule, asked, registered[key])];
      const commonName = subject.find((e) => e.kind === 'common_name')?.value;
      if (rule.autoIncludeCn && commonName !== undefined && !values.some((v) => v.toLowerCase() === commonName.toLowerCase())) values.unshift(commonName);
      if (values.length === 0 && rule.include === 'required') throw refuse(`${key} is required; ${requiredHint(rule)}`);
      for (const value of values) san.push({ kind: type, value });
    }
    return { subject, san, asRequested: sameEntries(subject, requested.subject) && sameEntries(san, requested.san) };
  }

  /**
   * The values of one attribute or SAN type: the first source in the
   * profile's order that has any decides. A CSR value must match that
   * decision (a fixed or registered value), or the patterns when the CSR is
   * the source.
   */
  private resolve(key: string, rule: SubjectAttributeRule | SanRule, asked: readonly string[], registered: readonly string[] | undefined): readonly string[] {
    const same = CASE_INSENSITIVE.has(key.slice(4)) ? (a: string, b: string) => a.toLowerCase() === b.toLowerCase() : (a: string, b: string) => a === b;
    for (const source of rule.sources) {
      const decided = source === 'fixed_value' ? rule.value : source === 'user_supplied' ? registered : undefined;
      if (source === 'csr') {
        if (asked.length === 0) continue;
        const matches = this.matchers.get(key)!;
        const bad = asked.find((value) => !matches(value));
        if (bad !== undefined) throw refuse(`${key} ${bad} does not match the profile's patterns (${rule.patterns.join(', ')})`);
        return asked;
      }
      if (!decided || decided.length === 0) continue;
      const other = asked.find((value) => !decided.some((d) => same(d, value)));
      if (other !== undefined) {
        throw refuse(
          source === 'fixed_value'
            ? `${key} is fixed to ${decided.join(', ')}; the CSR asks for ${other}`
            : `${key} is registered as ${decided.join(', ')} for this credential; the CSR asks for ${other}`,
        );
      }
      return decided;
    }
    if (asked.length > 0) throw refuse(`${key} is not taken from the CSR by profile (sources: ${rule.sources.join(', ')}); the CSR asks for ${asked[0]!}`);
    return [];
  }
}

function requiredHint(rule: SubjectAttributeRule | SanRule): string {
  return rule.sources.includes('user_supplied') && !rule.sources.includes('csr') ? 'no value is registered for this credential' : 'the CSR has none';
}

/**
 * Globs and regular expressions, anchored: `*.line3.plant.local` matches one
 * label in front of the domain and never a wildcard name the CSR asks for;
 * `/^SN[0-9]{8}$/` is a regular expression. No patterns: any value.
 */
export function compilePatterns(patterns: readonly string[], caseInsensitive: boolean): (value: string) => boolean {
  if (patterns.length === 0) return () => true;
  const expressions = patterns.map((pattern) => patternToRegExp(pattern, caseInsensitive));
  return (value) => expressions.some((expression) => expression.test(value));
}

/** Throws on a pattern that is not a valid regular expression, so the config check can name it. */
export function patternToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  const flags = caseInsensitive ? 'iu' : 'u';
  if (pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/')) return new RegExp(`^(?:${pattern.slice(1, -1)})$`, flags);
  const glob = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^.*@]+');
  return new RegExp(`^${glob}$`, flags);
}

/** Same entries regardless of order and string encoding (a client may re-encode PrintableString as UTF8String). */
export function sameEntries(a: readonly NameValue<string>[], b: readonly NameValue<string>[]): boolean {
  const key = (e: NameValue<string>): string => `${e.kind}=${e.value}`;
  const left = a.map(key).sort();
  const right = b.map(key).sort();
  return left.length === right.length && left.every((k, i) => k === right[i]);
}
