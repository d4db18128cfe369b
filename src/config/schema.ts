import { hostname } from 'node:os';
import { z } from 'zod';
import { AllowlistEntryError, toCidrBlocks } from '../auth/allowlist.js';
import { parseWindow, WEEKDAYS, type Weekday } from '../policy/usage-restrictions.js';
import { KEY_TYPE_ALIASES, KEY_TYPES, type KeyType } from '../pki/key-type.js';
import { EXTENDED_KEY_USAGE, KEY_USAGE } from '../pki/certificate-builder.js';
import { SIGNATURE_ALGORITHMS, type SignatureAlgorithmName } from '../pki/certificate-signer.js';
import { SAN_TYPES, SUBJECT_ATTRIBUTE_NAMES, type SanType, type SubjectAttribute } from '../pki/names.js';
import { patternToRegExp } from '../policy/name-policy.js';

/**
 * The whole configuration file, strict (an unknown key is an error, so a typo
 * never silently turns a setting off), with every default beside its field.
 * Profile settings reuse DigiCert's names where they fit.
 */

/**
 * A section that may be left empty: `csrattrs:` with every line under it
 * commented out is YAML null, and means "all defaults", not an error.
 */
function section<T extends z.ZodTypeAny>(schema: T) {
  return z.preprocess((value) => (value === null ? undefined : value), schema);
}

/** anytime, never, or a number of days. */
function renewWindow(days: string) {
  return z.union([z.enum(['anytime', 'never']), z.number().int().nonnegative()], {
    errorMap: () => ({ message: `must be anytime, never or a number of ${days}` }),
  });
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const isoDate = z.string().refine((d) => /^\d{4}-\d{2}-\d{2}/.test(d) && !Number.isNaN(Date.parse(d)), 'must be a date such as 2027-03-31');

const positiveInt = z.number({ invalid_type_error: 'must be a positive integer' }).int('must be a positive integer').positive('must be a positive integer');
const port = z.number({ invalid_type_error: 'must be a port number' }).int().min(0, 'must be a port number').max(65535, 'must be a port number');
/** Every setting that names a file to read uses this (config/load.ts finds them by it to check they can be read). */
export const filePath = z.string({ invalid_type_error: 'must be a file path' }).min(1, 'must be a file path');
const keyUsageName = z.enum(Object.keys(KEY_USAGE) as [keyof typeof KEY_USAGE, ...(keyof typeof KEY_USAGE)[]], {
  errorMap: () => ({ message: `must be one of ${Object.keys(KEY_USAGE).join(', ')}` }),
});
const extendedKeyUsageName = z.enum(Object.keys(EXTENDED_KEY_USAGE) as [keyof typeof EXTENDED_KEY_USAGE, ...(keyof typeof EXTENDED_KEY_USAGE)[]], {
  errorMap: () => ({ message: `must be one of ${Object.keys(EXTENDED_KEY_USAGE).join(', ')}` }),
});
const signatureAlgorithmName = z.enum(Object.keys(SIGNATURE_ALGORITHMS) as [SignatureAlgorithmName, ...SignatureAlgorithmName[]]);
/** DigiCert's key type names; FIPS 204/205's spellings (`ML-DSA-65`) are read as DigiCert's style (`MLDSA-65`). */
const keyType = z
  .enum([...KEY_TYPES, ...Object.keys(KEY_TYPE_ALIASES)] as [KeyType, ...KeyType[]], {
    errorMap: () => ({ message: `must be one of ${KEY_TYPES.join(', ')}` }),
  })
  .transform((name): KeyType => KEY_TYPE_ALIASES[name] ?? name);

/** One or more path segments of unreserved characters (RFC 3986 §2.3), e.g. `devicetrustmanager/IOT_1/device-group/line-1`. */
const label = z
  .string({ invalid_type_error: 'must be a label such as line-1 or a/b/c' })
  .regex(/^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/, 'must be path segments of letters, digits and . _ ~ - joined by /')
  .refine((l) => !l.split('/').some((s) => s === '.' || s === '..'), 'must not contain . or .. segments');

const localCa = z
  .object({
    certificate: filePath,
    key: filePath,
    /** CA certificates above the issuing CA, up to the root, served by /cacerts. */
    chain: z.array(filePath).default([]),
  })
  .strict();

/** A secret kept out of the config file: read from a file (mode 0600) or an environment variable. */
export const secret = z
  .object({
    file: filePath.optional(),
    env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
  })
  .strict()
  .refine((s) => (s.file === undefined) !== (s.env === undefined), 'must give exactly one of file or env');

/**
 * A PostgreSQL database several est-ra nodes share: a URL or host/port/
 * database, never a password in the file (`password: { file | env }`), and
 * TLS as libpq names its modes (verify-full by default when ssl is given).
 */
function isPostgresUrlWithoutPassword(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.password === '' && url.hostname !== '';
  } catch {
    return false;
  }
}

const postgresStore = z
  .object({
    url: z
      .string()
      .refine(isPostgresUrlWithoutPassword, 'must be postgres://user@host:port/database, without a password (use password: { file | env })')
      .optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: secret.optional(),
    ssl: z
      .object({
        mode: z
          .enum(['disable', 'require', 'verify-ca', 'verify-full'], { errorMap: () => ({ message: 'must be disable, require, verify-ca or verify-full' }) })
          .default('verify-full'),
        /** The CA certificate(s) that issued the server's certificate (verify-ca, verify-full). */
        ca: filePath.optional(),
      })
      .strict()
      .optional(),
    /** Connections this node keeps open to the database. */
    pool_size: positiveInt.default(10),
  })
  .strict()
  .refine((p) => (p.url === undefined) !== (p.host === undefined), 'must give exactly one of url or host');

/** A span of time as an admin writes it: 30d, 12h, 10m, 45s. */
const duration = z
  .string()
  .regex(/^\d+[smhd]$/, 'must be a number and a unit: s, m, h or d (e.g. 30d)')
  .transform((text) => Number(text.slice(0, -1)) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[text.slice(-1) as 's' | 'm' | 'h' | 'd']);

/** est-ra renews its own RA certificate at the upstream (simplereenroll with the current one) before it expires. */
const raRenewal = z
  .object({
    enabled: z.boolean().default(true),
    /** Start renewing this long before the RA certificate expires. */
    renew_before: duration.default('30d'),
    /** After a failed attempt, try again this much later (the metric and the error log alarm meanwhile). */
    retry_every: duration.default('1h'),
    /** A new key pair for the new certificate (the old key is replaced); false keeps the current key. */
    new_key: z.boolean().default(true),
  })
  .strict()
  .default({});

const estUpstream = z
  .object({
    /** Base URL with the upstream's label path, e.g. https://clientauth.demo.one.digicert.com/.well-known/est/devicetrustmanager/IOT_x/device-group/g */
    url: z
      .string({ required_error: 'is required' })
      .url('must be an https URL')
      .refine((u) => u.startsWith('https://'), 'must be an https URL'),
    /** est-ra's RA identity: certificate (then its chain) and key in PEM ... */
    ra_certificate: filePath.optional(),
    ra_key: filePath.optional(),
    /** ... or one PKCS#12 file with its passphrase. */
    ra_pkcs12: filePath.optional(),
    ra_pkcs12_passphrase: secret.optional(),
    /** Trust anchors for the upstream's TLS certificate (PEM). */
    trust_anchors: z.array(filePath).min(1, 'must list at least one trust anchor'),
    /** HTTP Basic towards the upstream, when it wants a passcode as well. */
    username: z.string().optional(),
    passcode: secret.optional(),
    timeout_ms: positiveInt.default(30_000),
    /** Connections kept open to the upstream. */
    max_sockets: positiveInt.default(32),
    /** Which upstream operation a device's simplereenroll becomes. */
    reenroll_operation: z
      .enum(['simplereenroll', 'simpleenroll'], { errorMap: () => ({ message: 'must be simplereenroll or simpleenroll' }) })
      .default('simplereenroll'),
    /** How often the upstream's /cacerts is fetched again. */
    cacerts_refresh_s: positiveInt.default(3600),
    /** Renewal of the RA certificate (ra_certificate + ra_key only: a PKCS#12 file is not rewritten). */
    ra_renewal: raRenewal,
  })
  .strict()
  .superRefine((est, ctx) => {
    const pem = est.ra_certificate !== undefined || est.ra_key !== undefined;
    const p12 = est.ra_pkcs12 !== undefined;
    if (pem === p12) ctx.addIssue({ code: 'custom', message: 'give the RA identity as ra_certificate + ra_key, or as ra_pkcs12' });
    else if (pem && (est.ra_certificate === undefined || est.ra_key === undefined))
      ctx.addIssue({ code: 'custom', message: 'ra_certificate and ra_key go together' });
    if (p12 && est.ra_pkcs12_passphrase === undefined) ctx.addIssue({ code: 'custom', path: ['ra_pkcs12_passphrase'], message: 'is required with ra_pkcs12' });
  });

const nameSources = z
  .array(z.enum(['csr', 'fixed_value', 'user_supplied'], { errorMap: () => ({ message: 'must be csr, fixed_value or user_supplied' }) }))
  .min(1, 'must list at least one source');
/** One value or a list of them. */
const nameValues = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === 'string' ? [v] : v));
/** Globs (`*.line3.plant.local`) or `/regular expressions/`; checked at load so a bad one names its field. */
const namePatterns = z
  .array(
    z.string().superRefine((pattern, ctx) => {
      try {
        patternToRegExp(pattern, false);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `is not a valid pattern: ${err instanceof Error ? err.message : String(err)}` });
      }
    }),
  )
  .default([]);
/** DigiCert writes yes/no where YAML has booleans. */
const yesNo = z.union([z.boolean(), z.enum(['yes', 'no'])]).transform((v) => v === true || v === 'yes');
const fixedNeedsValue = (rule: { sources: readonly string[]; value: readonly string[] }, ctx: z.RefinementCtx): void => {
  if (rule.sources.includes('fixed_value') && rule.value.length === 0)
    ctx.addIssue({ code: 'custom', path: ['value'], message: 'is required with the fixed_value source' });
};

/** A subject attribute (DigiCert's `subject.<attribute>`: enabled, optional, sources, value), plus acceptable patterns. */
const subjectAttribute = (enabled: boolean, optional: boolean) =>
  z
    .object({
      enabled: z.boolean({ invalid_type_error: 'must be true or false' }).default(enabled),
      optional: z.boolean({ invalid_type_error: 'must be true or false' }).default(optional),
      sources: nameSources.default(['csr']),
      value: nameValues.default([]),
      patterns: namePatterns,
    })
    .strict()
    .superRefine(fixedNeedsValue)
    .default({});

/** A subjectAltName type (DigiCert's `san.<type>`: include, sources, value; dns_name also auto_include_cn), plus patterns. */
const sanRule = (include: 'no' | 'optional') =>
  z
    .object({
      include: z.enum(['no', 'optional', 'required'], { errorMap: () => ({ message: 'must be no, optional or required' }) }).default(include),
      sources: nameSources.default(['csr']),
      value: nameValues.default([]),
      patterns: namePatterns,
      auto_include_cn: yesNo.default(false),
    })
    .strict()
    .superRefine(fixedNeedsValue)
    .default({});

/**
 * Defaults when a profile says nothing: the common name is required, the
 * other DigiCert attributes, DNS, IP and URI SANs are taken from the CSR as
 * asked, email and UPN SANs are refused. `est-ra init` writes a tighter
 * sample.
 */
const subjectRules = z
  .object(
    Object.fromEntries(SUBJECT_ATTRIBUTE_NAMES.map((name) => [name, subjectAttribute(true, name !== 'common_name')])) as Record<
      SubjectAttribute,
      ReturnType<typeof subjectAttribute>
    >,
  )
  .strict()
  .default({});
const sanRules = z
  .object(
    Object.fromEntries(SAN_TYPES.map((type) => [type, sanRule(type === 'email' || type === 'user_principal_name' ? 'no' : 'optional')])) as Record<
      SanType,
      ReturnType<typeof sanRule>
    >,
  )
  .strict()
  .default({});

const csrattrs = z
  .object({
    /** Of allowed_key_types, the one /csrattrs asks for (else every allowed type is listed); must be allowed. */
    key_type: keyType.optional(),
    /** Asks for a challengePassword attribute (RFC 2985), e.g. for channel binding. */
    challenge_password: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /** Further OIDs to ask for, in dotted form, beyond what the profile's rules ask (policy/csr-wishes.ts); none may contradict them. */
    oids: z.array(z.string().regex(/^[0-2](\.\d+)+$/, 'must be a dotted OID such as 2.5.4.5')).default([]),
  })
  .strict();

const profile = z
  .object({
    /** This profile also serves the bare /.well-known/est/ path. */
    default: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /** Label paths that select this profile; the profile's own name when omitted. */
    labels: z.array(label).optional(),
    authentication_policy: z.string({ required_error: 'is required', invalid_type_error: 'must be the name of an authentication policy' }),
    /** How /simpleenroll authenticates: passcode and/or a TLS client certificate of the policy; require_all: both. */
    enroll_authentication: section(
      z
        .object({
          methods: z
            .array(z.enum(['passcode', 'client_certificate'], { errorMap: () => ({ message: 'must be passcode or client_certificate' }) }))
            .min(1, 'must list at least one method')
            .default(['passcode']),
          require_all: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
        })
        .strict()
        .default({}),
    ),
    /** local-ca: the embedded CA below; est: forward to an RFC 7030 server with est-ra's RA identity. */
    upstream: z.enum(['local-ca', 'est'], { errorMap: () => ({ message: 'must be local-ca or est' }) }).default('local-ca'),
    local_ca: localCa.optional(),
    est: estUpstream.optional(),
    /** Whether /csrattrs answers the profile's attributes, the upstream's, or both. */
    csrattrs_source: z.enum(['profile', 'upstream', 'merged'], { errorMap: () => ({ message: 'must be profile, upstream or merged' }) }).default('profile'),
    /**
     * plain: the RFC 7030 §4.5.2 list; template: that list followed by the RFC 9908 CertificationRequestInfoTemplate
     * attribute (RFC 9908 §4: clients that know it use it alone, older ones ignore it; a client cannot ask for it).
     */
    csrattrs_form: z.enum(['plain', 'template'], { errorMap: () => ({ message: 'must be plain or template' }) }).default('plain'),
    /** /fullcmc (RFC 7030 §4.3): off answers 501; passthrough relays the CMC request byte for byte to the est upstream's /fullcmc. */
    fullcmc: z.enum(['off', 'passthrough'], { errorMap: () => ({ message: 'must be off or passthrough' }) }).default('off'),
    /**
     * How base64 answers are laid out: auto = one line for a request without a
     * User-Agent (strongSwan pki), 64-column lines for every other; wrapped or
     * single_line for every request (README "Base64 framing").
     */
    base64_framing: z.enum(['auto', 'wrapped', 'single_line'], { errorMap: () => ({ message: 'must be auto, wrapped or single_line' }) }).default('auto'),
    /** DigiCert's setting: /cacerts also carries the CA certificates of est-ra's own TLS chain. */
    est_cacerts_include_full_tls_chain: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /** DigiCert's usage restriction, in every notation auth/allowlist.ts reads; empty: any address. */
    allowed_ip_addresses: z
      .array(
        z.string({ invalid_type_error: 'must be an address, block or range as text' }).superRefine((entry, ctx) => {
          try {
            toCidrBlocks(entry.trim());
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: err instanceof AllowlistEntryError ? err.message : String(err) });
          }
        }),
      )
      .default([]),
    /** RFC 7030 §3.5: the CSR's challengePassword must be the base64 of this TLS connection's tls-unique (TLS 1.2) or tls-exporter (TLS 1.3). */
    channel_binding: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /** DigiCert's renewal_settings, for simplereenroll. */
    renewal_settings: section(
      z
        .object({
          renew_valid_cert: renewWindow('days before expiry').default('anytime'),
          renew_expired_cert: renewWindow('days after expiry').default('never'),
          renew_revoked_cert: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
          renewal_key_pair: z
            .enum(['new_key_required', 'optional', 'same_key_only'], { errorMap: () => ({ message: 'must be new_key_required, optional or same_key_only' }) })
            .default('optional'),
        })
        .strict()
        .default({}),
    ),
    /** DigiCert's certificate management policy settings: enrollments / renewals wait for an administrator (est-ra approvals). */
    require_approval_for_enroll: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    require_approval_for_renew: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /** The Retry-After (seconds) a device waiting for approval is told (RFC 7030 §4.2.3); libest sleeps all of it. */
    approval_retry_after_s: positiveInt.default(60),
    /** A pending approval not decided within this expires, and the device is told 403 approval expired. */
    approval_expires_after: duration.default('7d'),
    /** DigiCert's usage restrictions: operational dates and hours. Absent: always open. */
    usage_restrictions: z
      .object({
        time_zone: z.string().refine(isTimeZone, 'must be an IANA time zone such as Europe/Berlin'),
        operational_hours: z
          .object(
            Object.fromEntries(
              WEEKDAYS.map((weekday) => [
                weekday,
                z.array(z.string().refine((w) => parseWindow(w) !== undefined, 'must be a window such as 06:00-22:00')).optional(),
              ]),
            ) as Record<Weekday, z.ZodOptional<z.ZodArray<z.ZodEffects<z.ZodString>>>>,
          )
          .strict()
          .optional(),
        operational_dates: z.object({ valid_from: isoDate.optional(), valid_to: isoDate.optional() }).strict().optional(),
      })
      .strict()
      .optional(),
    /** The smallest RSA public exponent accepted (always odd; RFC 8017 allows 3, NIST SP 800-56B wants 65537). */
    rsa_min_public_exponent: z
      .number({ invalid_type_error: 'must be an odd number, at least 3' })
      .int()
      .min(3, 'must be an odd number, at least 3')
      .refine((e) => e % 2 === 1, 'must be an odd number, at least 3')
      .default(65537),
    allowed_key_types: z
      .array(keyType)
      .min(1, 'must list at least one key type')
      .default(['rsa_2048', 'rsa_3072', 'rsa_4096', 'p_256', 'p_384', 'p_521', 'ed_25519']),
    /**
     * DigiCert's key generation option: client_side (the device makes its key: simpleenroll, simplereenroll),
     * server_side (est-ra makes it: /serverkeygen only, RFC 7030 §4.4) or either.
     */
    key_generation_option: z
      .enum(['client_side', 'server_side', 'either'], { errorMap: () => ({ message: 'must be client_side, server_side or either' }) })
      .default('client_side'),
    validity: z
      .object({
        duration_value: positiveInt,
        duration_unit: z.enum(['hours', 'days', 'months', 'years'], { errorMap: () => ({ message: 'must be hours, days, months or years' }) }),
      })
      .strict()
      .default({ duration_value: 1, duration_unit: 'years' }),
    key_usage: section(
      z
        .object({
          rsa: z.array(keyUsageName).default(['digital_signature', 'key_encipherment']),
          ecdsa: z.array(keyUsageName).default(['digital_signature', 'key_agreement']),
          eddsa: z.array(keyUsageName).default(['digital_signature']),
        })
        .strict()
        .default({}),
    ),
    extended_key_usage: z.array(extendedKeyUsageName).default(['client_authentication']),
    /** What the certificate may say: DigiCert's certificate profile subject.* keys, with patterns. */
    subject: section(subjectRules),
    /** DigiCert's san.* keys, plus ip_address and uri. */
    san: section(sanRules),
    /** A CSR signed with SHA-1 proves possession with a broken hash; refused unless this is set. */
    allow_sha1_proof_of_possession: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /**
     * DigiCert's signature_algorithm for the certificates issued: match_issuer (the CA key's own strength), or the
     * algorithms allowed (the local CA signs with the first its key can make; an upstream's answer must use one).
     */
    signature_algorithm: z
      .union([z.literal('match_issuer'), z.array(signatureAlgorithmName).min(1, 'must list at least one algorithm')], {
        errorMap: () => ({ message: `must be match_issuer or a list of ${Object.keys(SIGNATURE_ALGORITHMS).join(', ')}` }),
      })
      .default('match_issuer'),
    csrattrs: section(csrattrs.default({})),
  })
  .strict();

const authenticationPolicy = z
  .object({
    /** DigiCert's `enable_username_for_passcode`: the Basic username must match the passcode's. */
    enable_username_for_passcode: z.boolean({ invalid_type_error: 'must be true or false' }).default(false),
    /** Bootstrap / manufacturer trust anchors: a TLS client certificate they issued authenticates an enrollment. */
    authentication_cas: z.array(filePath).default([]),
    /** Individual client certificates accepted as they are (e.g. self-signed device certificates). */
    pinned_certificates: z.array(filePath).default([]),
    /**
     * CAs of downstream RAs (RFC 7030 §3.7): a client certificate with id-kp-cmcRA from one of them
     * enrolls and renews on behalf of the devices the RA has authenticated, whatever enroll_authentication says.
     */
    downstream_ra_cas: z.array(filePath).default([]),
    /**
     * CAs whose certificates est-ra did not issue but may renew under profiles of this policy (devices moving in
     * from another RA). A certificate est-ra issued is renewed only under the profile that issued it.
     */
    renewal_cas: z.array(filePath).default([]),
    /** Revocation of bootstrap and renewal certificates: off, soft_fail (log and allow when unknown) or hard_fail. */
    revocation: section(
      z
        .object({
          mode: z.enum(['off', 'soft_fail', 'hard_fail'], { errorMap: () => ({ message: 'must be off, soft_fail or hard_fail' }) }).default('off'),
          crl_files: z.array(filePath).default([]),
          use_crl_distribution_points: z.boolean({ invalid_type_error: 'must be true or false' }).default(true),
          ocsp: z.boolean({ invalid_type_error: 'must be true or false' }).default(true),
          /** Overrides the responder named in the certificate's authority information access. */
          ocsp_responder_url: z.string().url('must be a URL').optional(),
          timeout_ms: positiveInt.default(5000),
        })
        .strict()
        .default({}),
    ),
  })
  .strict();

export const configSchema = z
  .object({
    /** The IANA time zone of dates given to the CLI (passcodes create --expires DATE: the end of that day there); absent: the machine's. */
    time_zone: z.string().refine(isTimeZone, 'must be an IANA time zone such as Europe/Berlin').optional(),
    listen: section(
      z
        .object({
          host: z.string().default('0.0.0.0'),
          port: port.default(8443),
          /**
           * PROXY protocol v2 from TCP load balancers (HAProxy `send-proxy-v2`, docs/cluster.md): a connection from
           * an address in `from` (auth/allowlist.ts notations) must open with the header and is then seen as the
           * device's; connections from other addresses are never read for one.
           */
          proxy_protocol: z
            .object({
              from: z
                .array(
                  z.string({ invalid_type_error: 'must be an address, block or range as text' }).superRefine((entry, ctx) => {
                    try {
                      toCidrBlocks(entry.trim());
                    } catch (err) {
                      ctx.addIssue({ code: 'custom', message: err instanceof AllowlistEntryError ? err.message : String(err) });
                    }
                  }),
                )
                .min(1, 'name the load balancers that send the header'),
              /** How long a balancer's connection may take to deliver its header. */
              header_timeout_ms: positiveInt.default(3_000),
            })
            .strict()
            .optional(),
        })
        .strict()
        .default({}),
    ),
    tls: z
      .object({
        /** Server certificate, then its chain, PEM. */
        certificate: filePath,
        key: filePath,
        min_version: z.enum(['TLSv1.2', 'TLSv1.3'], { errorMap: () => ({ message: 'must be TLSv1.2 or TLSv1.3' }) }).default('TLSv1.2'),
        /** TLS 1.2 cipher suites (OpenSSL names); the default is Mozilla's "intermediate": forward secrecy and AEAD only. */
        ciphers: z
          .string()
          .min(1)
          .default(
            'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
              'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384',
          ),
      })
      .strict(),
    /** This node among several on one PostgreSQL store (docs/cluster.md). */
    cluster: section(
      z
        .object({
          /** The name other nodes see on the requests this one holds; at start it takes back what its previous run held. */
          node_name: z
            .string()
            .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/, 'must be 1-63 letters, digits, dots, colons, dashes or underscores')
            .default(hostname()),
          /** How long a node holds a request it forwards: another node takes it over this long after the node died. */
          lease_seconds: positiveInt.default(120),
        })
        .strict()
        .default({}),
    ),
    store: z
      .object({
        /** One node: the store is this file. */
        sqlite: z.object({ path: filePath }).strict().optional(),
        /** Several nodes: the store is this PostgreSQL database, shared (docs/cluster.md). */
        postgres: postgresStore.optional(),
        /** Refused requests, counted refusals and the CSR bodies of finished requests are pruned after this many days. */
        retention_days: positiveInt.default(90),
      })
      .strict()
      .refine((store) => (store.sqlite === undefined) !== (store.postgres === undefined), 'must give exactly one of sqlite or postgres'),
    log: section(
      z
        .object({
          level: z.enum(['error', 'warn', 'info', 'debug'], { errorMap: () => ({ message: 'must be error, warn, info or debug' }) }).default('info'),
          /** json for journald and collectors, text for a terminal, auto picks by whether stdout is a TTY. */
          format: z.enum(['auto', 'json', 'text'], { errorMap: () => ({ message: 'must be auto, json or text' }) }).default('auto'),
        })
        .strict()
        .default({}),
    ),
    limits: section(
      z
        .object({
          /** Largest request body accepted; globalsign/est uses the same 64 KiB. */
          max_body_bytes: positiveInt.default(65536),
          /** Time a client has to send its request headers (slowloris). */
          headers_timeout_ms: positiveInt.default(10_000),
          /** Time a client has to send its whole request. */
          request_timeout_ms: positiveInt.default(30_000),
          keep_alive_timeout_ms: positiveInt.default(5_000),
          max_connections: positiveInt.default(1024),
          /** Connections one address may hold at once: a scanner or a broken device cannot take them all. */
          max_connections_per_address: positiveInt.default(64),
          /** The last connections under max_connections, kept for addresses that hold none yet (at most a quarter of them). */
          connections_reserve: z.number().int().nonnegative().default(64),
          /** Refused requests one address may get per minute before it is answered 429 until the minute is over. */
          refusals_per_minute_per_address: positiveInt.default(120),
          /** Refused requests one passcode may get per minute (a used-up one tried again and again) before 429. */
          refusals_per_minute_per_passcode: positiveInt.default(30),
          /** How long an address past its refusal budget waits for each 429: a flood ignoring Retry-After gets max_connections_per_address answers per delay. */
          refused_answer_delay_ms: z.number().int().nonnegative().default(1000),
          /** Time a client has to finish the TLS handshake. */
          handshake_timeout_ms: positiveInt.default(5_000),
          /**
           * /serverkeygen key generations running at once. They run on libuv's thread pool (4 threads unless
           * UV_THREADPOOL_SIZE says otherwise), which also checks every CSR's and certificate's signature: a few
           * RSA-4096 generations (seconds each) must not hold all of it. Up to 8 times as many wait; beyond, 503.
           */
          concurrent_key_generations: positiveInt.default(2),
        })
        .strict()
        .default({}),
    ),
    /** A plain-HTTP listener for Prometheus /metrics and /healthz; off unless configured. Keep it on loopback or a management network. */
    ops: z
      .object({ listen: z.object({ host: z.string().default('127.0.0.1'), port }).strict() })
      .strict()
      .optional(),
    authentication_policies: z.record(z.string(), section(authenticationPolicy.default({}))),
    profiles: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, 'profile names are letters, digits and . _ -'), profile),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ProfileConfig = z.infer<typeof profile>;
export type CsrAttrsConfig = z.infer<typeof csrattrs>;
