/**
 * TLS client certificates for the fuzzer: a pool made once (a TLS context
 * per case would cost more than the case), each entry a certificate with
 * hostile fields that still parses as DER, signed again so the signature is
 * right for the key that signed it, and an https.Agent that presents it.
 *
 * Node's TLS layer (OpenSSL) reads the certificate first and refuses some
 * at the handshake; est-ra's server asks with `requestCert: true,
 * rejectUnauthorized: false` (server.ts), so one that parses but does not
 * validate reaches est-ra's own code: path validation, renewal origin, names.
 */
import { createSecureContext } from 'node:tls';
import { Agent } from 'node:https';
import type { KeyObject } from 'node:crypto';
import {
  children,
  contextTag,
  objectIdentifier,
  readTlv,
  sequence,
  set,
  sliceTlv,
  smallInteger,
  tlv,
  unsignedInteger,
  type TlvHeader,
} from '../../src/pki/der.js';
import { caCertificate, certificate, csr, extension, EXTENSIONS, name, newKey, tbsFields, toPem, type KeyPair, type TbsFields } from './pki.js';
import { int, mutate, pick, randomBytes, type Random } from './random.js';

export interface Issuer {
  readonly subject: Buffer;
  readonly key: KeyObject;
}

export interface ClientCertEntry {
  /** What kind of certificate, for the per-kind counts. */
  readonly kind: string;
  /** What was done to it, for a finding's description. */
  readonly mutations: readonly string[];
  readonly path: string;
  /** A CSR with the certificate's subject and key (base64): a renewal then reaches the checks after the identity one. */
  readonly body: Buffer;
  readonly agent: Agent;
  /** PEM of the certificate and the chain it sends: a finding's vector. */
  readonly pem: string;
}

export interface ClientCertPool {
  readonly entries: readonly ClientCertEntry[];
  /** Certificates node:tls itself would not load on the client side (not sent, not counted as cases). */
  readonly unloadable: number;
  destroy(): void;
}

export interface PoolOptions {
  readonly size: number;
  /** est-ra's TLS trust anchor. */
  readonly serverCa: Buffer;
  /** The policy's authentication CA (profile `certs`: enroll by client certificate). */
  readonly bootstrap: Issuer;
  /** est-ra's embedded issuing CA (renewal of certificates it did not issue, or did: `issued`). */
  readonly localIssuing: Issuer;
  /** Certificates est-ra really issued, with their keys: renewals that can succeed. */
  readonly issued: readonly { readonly der: Buffer; readonly key: KeyPair }[];
}

const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;
const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
const attribute = (oid: string, value: Buffer): Buffer => sequence(objectIdentifier(oid), value);
const CN = '2.5.4.3';

/** Hostile serial numbers (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
const SERIALS: readonly [string, (random: Random) => Buffer][] = [
  ['serial 20 octets', (random) => unsignedInteger(randomBytes(random, 20))],
  ['serial 32 octets', (random) => tlv(0x02, Buffer.concat([Buffer.from([0x11]), randomBytes(random, 31)]))],
  ['serial zero', () => tlv(0x02, Buffer.from([0]))],
  ['serial negative', () => tlv(0x02, Buffer.from([0xff, 0x01]))],
  ['serial non-minimal', () => tlv(0x02, Buffer.from([0x00, 0x01]))],
  ['serial empty', () => tlv(0x02, Buffer.alloc(0))],
  ['serial of an issued certificate', () => tlv(0x02, Buffer.from([0x40, 1, 2, 3, 4, 5, 6, 7]))],
];

const SUBJECTS: readonly [string, (random: Random) => Buffer][] = [
  ['subject CN empty', () => name('')],
  ['subject CN 3000 chars', () => name('x'.repeat(3000))],
  ['subject empty', () => sequence()],
  ['subject BMPString odd length', () => sequence(set(attribute(CN, tlv(0x1e, Buffer.from([0, 0x41, 0])))))],
  ['subject UTF8String not UTF-8', () => sequence(set(attribute(CN, tlv(0x0c, Buffer.from([0xff, 0xfe, 0xc0, 0x80])))))],
  ['subject PrintableString with @', () => sequence(set(attribute(CN, tlv(0x13, utf8('dev@ice*')))))],
  ['subject T61String', () => sequence(set(attribute(CN, tlv(0x14, Buffer.from([0xc2, 0x61, 0x62])))))],
  ['subject CN with NUL', () => name('dev\u0000ice')],
  ['subject CN RTL override', () => name('dev\u202eecive')],
  ['subject multi-valued RDN', () => sequence(set(attribute(CN, tlv(0x0c, utf8('a'))), attribute('2.5.4.10', tlv(0x0c, utf8('b')))))],
  [
    'subject serialNumber',
    (random) => sequence(set(attribute('2.5.4.5', tlv(0x13, utf8(`SN${int(random, 1e6)}`)))), set(attribute(CN, tlv(0x0c, utf8('sn-device'))))),
  ],
  ['subject unknown attribute with INTEGER', () => sequence(set(attribute('1.2.3.4.5', smallInteger(7))))],
  ['subject 300 RDNs', () => sequence(...Array.from({ length: 300 }, (_, i) => set(attribute(CN, tlv(0x0c, utf8(`n${i}`))))))],
  ['subject attribute without value', () => sequence(set(sequence(objectIdentifier(CN))))],
  ['subject CN is an INTEGER', () => sequence(set(attribute(CN, smallInteger(1))))],
];

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');
const TIMES: readonly [string, (fields: TbsFields, now: number) => void][] = [
  ['expired', (f) => ((f.notBefore = tlv(0x17, ascii('000101000000Z'))), (f.notAfter = tlv(0x17, ascii('010101000000Z'))))],
  ['not yet valid', (f, now) => ((f.notBefore = tlv(0x17, ascii(utc(now + 5 * YEAR)))), (f.notAfter = tlv(0x17, ascii(utc(now + 6 * YEAR)))))],
  ['notAfter GeneralizedTime with fraction', (f) => (f.notAfter = tlv(0x18, ascii('20400101000000.5Z')))],
  ['notAfter GeneralizedTime without Z', (f) => (f.notAfter = tlv(0x18, ascii('20400101000000')))],
  ['notAfter UTCTime without seconds', (f) => (f.notAfter = tlv(0x17, ascii('4001010000Z')))],
  ['notBefore GeneralizedTime before 2050', (f) => (f.notBefore = tlv(0x18, ascii('20200101000000Z')))],
  ['notAfter 99991231235959Z', (f) => (f.notAfter = tlv(0x18, ascii('99991231235959Z')))],
  ['notBefore after notAfter', (f) => ([f.notBefore, f.notAfter] = [f.notAfter, f.notBefore])],
  ['notAfter UTCTime with offset', (f) => (f.notAfter = tlv(0x17, ascii('400101000000+0100')))],
  ['notAfter month 13', (f) => (f.notAfter = tlv(0x17, ascii('401301000000Z')))],
];

function utc(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

const EXTENSION_SETS: readonly [string, (random: Random) => Buffer[]][] = [
  ['no extensions', () => []],
  ['EKU serverAuth only', () => [EXTENSIONS.endEntity(), EXTENSIONS.serverAuth()]],
  ['unknown critical extension', (random) => [EXTENSIONS.clientAuth(), extension('1.2.3.4.5.6', randomBytes(random, 8), true)]],
  ['unknown extension with garbage', (random) => [EXTENSIONS.clientAuth(), extension('1.3.6.1.4.1.99999.1', randomBytes(random, 1 + int(random, 300)))]],
  ['duplicate EKU', () => [EXTENSIONS.clientAuth(), EXTENSIONS.clientAuth()]],
  ['CA certificate as client', () => [EXTENSIONS.ca(0), EXTENSIONS.keyUsage(0x86), EXTENSIONS.clientAuth()]],
  [
    'SAN with odd names',
    () => [
      EXTENSIONS.clientAuth(),
      extension(
        '2.5.29.17',
        sequence(
          tlv(0x82, utf8('a\u0000b.local')),
          tlv(0x87, Buffer.from([10, 0, 0, 1, 9])),
          tlv(0x86, utf8('http://x/%00')),
          contextTag(0, objectIdentifier('1.3.6.1.4.1.311.20.2.3'), contextTag(0, tlv(0x0c, utf8('upn@x')))),
          tlv(0x81, utf8('')),
        ),
      ),
    ],
  ],
  ['SAN not DER', (random) => [EXTENSIONS.clientAuth(), extension('2.5.29.17', randomBytes(random, 1 + int(random, 40)))]],
  ['EKU not DER', (random) => [extension('2.5.29.37', Buffer.concat([Buffer.from([0x30, 0x84]), randomBytes(random, 6)]))]],
  ['basicConstraints not DER', (random) => [extension('2.5.29.19', randomBytes(random, 5), true), EXTENSIONS.clientAuth()]],
  ['keyUsage all bits', () => [EXTENSIONS.keyUsage(0xff), EXTENSIONS.clientAuth()]],
  ['name constraints on a leaf', () => [extension('2.5.29.30', sequence(contextTag(0, sequence(tlv(0x82, utf8('.evil'))))), true), EXTENSIONS.clientAuth()]],
  ['anyExtendedKeyUsage', () => [extension('2.5.29.37', sequence(objectIdentifier('2.5.29.37.0')))]],
  ['authorityKeyIdentifier garbage', (random) => [EXTENSIONS.clientAuth(), extension('2.5.29.35', randomBytes(random, 12))]],
  ['huge extension (40 KB)', (random) => [EXTENSIONS.clientAuth(), extension('1.3.6.1.4.1.99999.2', randomBytes(random, 40_000))]],
  [
    '100 extensions',
    (random) => [EXTENSIONS.clientAuth(), ...Array.from({ length: 100 }, (_, i) => extension(`1.3.6.1.4.1.99999.3.${i}`, randomBytes(random, 4)))],
  ],
];

/** Who signs and where it is presented. */
type Family = 'bootstrap' | 'untrusted' | 'self-signed' | 'renewal' | 'chain' | 'issued';

export function makeClientCertPool(random: Random, options: PoolOptions): ClientCertPool {
  const untrusted = newKey();
  const entries: ClientCertEntry[] = [];
  let unloadable = 0;
  for (let i = 0; entries.length < options.size && i < options.size * 3; i++) {
    const family: Family = pick(random, ['bootstrap', 'bootstrap', 'untrusted', 'self-signed', 'renewal', 'renewal', 'chain', 'issued']);
    const made = makeOne(random, family, i, untrusted, options);
    const keyPem = made.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const pem = made.chain.map((der) => toPem(der)).join('');
    try {
      createSecureContext({ cert: pem, key: keyPem });
    } catch {
      unloadable++;
      continue;
    }
    const subject = made.csrSubject;
    entries.push({
      kind: `${family}${made.mutations.length > 0 ? '-mutated' : ''}`,
      mutations: made.mutations,
      path: made.path,
      body: Buffer.from(`${csr(subject, made.key).toString('base64')}\n`),
      pem,
      agent: new Agent({
        keepAlive: true,
        maxSockets: 2,
        // An idle socket is closed here before est-ra's keep_alive_timeout_ms (5 s) closes it: a request sent as the
        // server closes would be a reset that is no one's fault.
        timeout: 2000,
        ca: options.serverCa,
        cert: pem,
        key: keyPem,
        // TLS 1.2 refuses a certificate inside the handshake, TLS 1.3 after it (the client hears an alert on its first read): both are fuzzed.
        maxVersion: (process.env.FUZZ_TLS as 'TLSv1.2' | undefined) ?? (random() < 0.5 ? 'TLSv1.2' : 'TLSv1.3'),
      }),
    });
  }
  return {
    entries,
    unloadable,
    destroy: () => entries.forEach((entry) => entry.agent.destroy()),
  };
}

interface Made {
  readonly chain: Buffer[];
  readonly key: KeyPair;
  readonly path: string;
  readonly mutations: string[];
  readonly csrSubject: Buffer;
}

function makeOne(random: Random, family: Family, index: number, untrusted: KeyPair, options: PoolOptions): Made {
  const now = Date.now();
  const key = newKey();
  if (family === 'issued' && options.issued.length > 0) {
    // A certificate est-ra issued, presented as it is or signed again by its CA with one field changed (same serial, other DER).
    const real = pick(random, options.issued);
    const mutations: string[] = [];
    let der = real.der;
    if (random() < 0.5) {
      const fields = tbsOf(real.der);
      mutateFields(random, fields, now, mutations, ['time', 'extensions']);
      der = certificate(fields, options.localIssuing.key);
    }
    return { chain: [der], key: real.key, path: '/.well-known/est/demo/simplereenroll', mutations, csrSubject: tbsOf(real.der).subject };
  }
  const subject = name(`fz-cert-${index}`);
  const fields = tbsFields({
    issuer: options.bootstrap.subject,
    subject,
    spki: key.spki,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + YEAR),
    extensions: [EXTENSIONS.endEntity(), EXTENSIONS.keyUsage(0x80), EXTENSIONS.clientAuth()],
  });
  const mutations: string[] = [];
  mutateFields(random, fields, now, mutations, ['serial', 'subject', 'time', 'extensions']);
  const chain: Buffer[] = [];
  let path = pick(random, ['/.well-known/est/certs/simpleenroll', '/.well-known/est/certs/simpleenroll', '/.well-known/est/certs/simplereenroll']);
  switch (family) {
    case 'bootstrap':
    case 'issued':
      chain.push(certificate(fields, options.bootstrap.key));
      break;
    case 'untrusted':
      chain.push(certificate(fields, untrusted.privateKey));
      break;
    case 'self-signed':
      fields.issuer = fields.subject;
      chain.push(certificate(fields, key.privateKey));
      break;
    case 'renewal':
      fields.issuer = options.localIssuing.subject;
      chain.push(certificate(fields, options.localIssuing.key));
      path = pick(random, ['/.well-known/est/demo/simplereenroll', '/.well-known/est/certs/simplereenroll']);
      break;
    case 'chain':
      chain.push(...chainOf(random, fields, options.bootstrap, mutations));
      break;
  }
  if (random() < 0.08) {
    // A byte defect after signing: most of these node:tls or OpenSSL refuse, which is counted, not a finding.
    chain[0] = mutate(random, chain[0]!);
    mutations.push('byte defect after signing');
  }
  return { chain, key, path, mutations, csrSubject: fields.subject };
}

/** A leaf under one or two fuzzer-made intermediates of the bootstrap CA, each possibly wrong for a CA. */
function chainOf(random: Random, leaf: TbsFields, bootstrap: Issuer, mutations: string[]): Buffer[] {
  const intermediate = newKey();
  const defect = pick(random, ['good', 'not a CA', 'no keyCertSign', 'expired', 'pathLen 0 with one below', 'loop', 'unrelated extra', 'anchor sent again']);
  mutations.push(`intermediate ${defect}`);
  const subject = name(`fz-intermediate-${int(random, 1e6)}`);
  const now = Date.now();
  const caFields = tbsFields({
    issuer: bootstrap.subject,
    subject,
    spki: intermediate.spki,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + YEAR),
    extensions: [EXTENSIONS.ca(defect === 'pathLen 0 with one below' ? 0 : undefined), EXTENSIONS.keyUsage(0x86)],
  });
  if (defect === 'not a CA') caFields.extensions = [EXTENSIONS.endEntity()];
  if (defect === 'no keyCertSign') caFields.extensions = [EXTENSIONS.ca(), EXTENSIONS.keyUsage(0x80)];
  if (defect === 'expired') caFields.notAfter = tlv(0x17, ascii('010101000000Z'));
  const ca = certificate(caFields, bootstrap.key);
  if (defect === 'pathLen 0 with one below') {
    const lower = newKey();
    const lowerSubject = name(`fz-lower-${int(random, 1e6)}`);
    const lowerCa = caCertificate('unused', lower, { subject, key: intermediate.privateKey });
    const lowerFields = tbsOf(lowerCa);
    lowerFields.subject = lowerSubject;
    leaf.issuer = lowerSubject;
    return [certificate(leaf, lower.privateKey), certificate(lowerFields, intermediate.privateKey), ca];
  }
  leaf.issuer = subject;
  const out = [certificate(leaf, intermediate.privateKey), ca];
  if (defect === 'loop') {
    // Two CAs that certify each other, as in path-validation.ts's comment: the search must stay bounded.
    const other = newKey();
    const otherSubject = name(`fz-loop-${int(random, 1e6)}`);
    const mk = (subjectName: Buffer, issuerName: Buffer, spki: Buffer, signer: KeyObject): Buffer =>
      certificate(
        tbsFields({
          issuer: issuerName,
          subject: subjectName,
          spki,
          notBefore: new Date(now - HOUR),
          notAfter: new Date(now + YEAR),
          extensions: [EXTENSIONS.ca(), EXTENSIONS.keyUsage(0x86)],
        }),
        signer,
      );
    out.splice(1, 1, mk(subject, otherSubject, intermediate.spki, other.privateKey), mk(otherSubject, subject, other.spki, intermediate.privateKey));
  }
  if (defect === 'unrelated extra') out.push(caCertificate('fz-unrelated', newKey()));
  if (defect === 'anchor sent again') out.push(caCertificate('fz-anchor-lookalike', newKey()));
  return out;
}

function mutateFields(
  random: Random,
  fields: TbsFields,
  now: number,
  mutations: string[],
  kinds: readonly ('serial' | 'subject' | 'time' | 'extensions')[],
): void {
  const count = int(random, 3);
  for (let n = 0; n < count; n++) {
    switch (pick(random, kinds)) {
      case 'serial': {
        const [what, make] = pick(random, SERIALS);
        fields.serial = make(random);
        mutations.push(what);
        break;
      }
      case 'subject': {
        const [what, make] = pick(random, SUBJECTS);
        fields.subject = make(random);
        mutations.push(what);
        break;
      }
      case 'time': {
        const [what, apply] = pick(random, TIMES);
        apply(fields, now);
        mutations.push(what);
        break;
      }
      case 'extensions': {
        const [what, make] = pick(random, EXTENSION_SETS);
        fields.extensions = make(random);
        mutations.push(what);
        break;
      }
    }
  }
  if (random() < 0.05) {
    delete fields.version;
    mutations.push('v1 certificate');
  }
}

/** The fields of a certificate we made (DER), to change one and sign again. */
function tbsOf(der: Buffer): TbsFields {
  const whole = (node: TlvHeader): Buffer => sliceTlv(der, node);
  const tbs = children(der, children(der, readTlv(der, 0))[0]);
  const at = tbs[0]!.tag === 0xa0 ? 1 : 0;
  const validity = children(der, tbs[at + 3]);
  const extensions = tbs[at + 6] ? children(der, children(der, tbs[at + 6])[0]).map(whole) : [];
  return {
    version: at === 1 ? whole(tbs[0]!) : undefined,
    serial: whole(tbs[at]!),
    issuer: whole(tbs[at + 2]!),
    notBefore: whole(validity[0]!),
    notAfter: whole(validity[1]!),
    subject: whole(tbs[at + 4]!),
    spki: whole(tbs[at + 5]!),
    extensions,
  };
}
