import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { EstError } from '../../src/errors.js';
import { CertificateView } from '../../src/pki/certificate-view.js';
import { parseAndVerifyCsr } from '../../src/pki/csr.js';
import { DerError } from '../../src/pki/der.js';
import { verifySignedDer } from '../../src/pki/signature.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { mutate, type Mutation, type Signer } from '../helpers/der-mutations.js';
import { mustRun, run } from '../helpers/run.js';
import { PQC_SETS, pqcCsr, pqcKeyPair } from '../helpers/pqc-csr.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1js from 'asn1js';
import { CertificationRequest } from '@peculiar/asn1-csr';

/** Bouncy Castle as Debian installs it (libbcprov-java, libbcutil-java, libbcpkix-java). */
const BC_CLASSPATH = ['bcprov', 'bcutil', 'bcpkix'].map((jar) => `/usr/share/java/${jar}.jar`).join(':');
const ORACLE_SOURCE = fileURLToPath(new URL('../../../test/oracle/DerOracle.java', import.meta.url));
/** Cases per seed structure; 3 CSRs and 3 certificates make 6 × 1750 = 10 500 cases, the PQC CSRs 1000 + 150 more. */
const CASES_PER_SEED = 1750;
/** Fixed, so a failure names a seed anyone can replay. */
const BASE_SEED = 0x0e57_9a00;

interface Seed {
  readonly name: string;
  readonly kind: 'csr' | 'cert';
  readonly der: Buffer;
  readonly signer: Signer;
  /** The key a certificate's signature is checked with (its issuer's). */
  readonly verifyKey?: KeyObject;
  /** A post-quantum CSR: OpenSSL 3.0 parses it but cannot verify it, so noble is the signature half of the oracle. */
  readonly pqc?: boolean;
  /** Mutations of this seed; CASES_PER_SEED unless signing is slow (SLH-DSA). */
  readonly cases?: number;
}

type Verdict = 'accept' | 'refuse';

/**
 * Differential test of est-ra's strict DER readers (issue #9 §4) against
 * libraries, over 10 000+ seeded mutations (test/helpers/der-mutations.ts)
 * of real CSRs (P-256 with extensions, RSA-2048, Ed25519 with a
 * challengePassword; made by `openssl req`) and real certificates (a CA and
 * two leaves made by `openssl req -x509` / `openssl x509 -req`).
 *
 * The oracle, built only from library verdicts:
 *
 *   accept  ⇔  OpenSSL accepts  AND  Bouncy Castle accepts it as DER
 *
 * - OpenSSL: for a CSR, `openssl req -inform DER -verify -noout` exits 0
 *   AND says "self-signature verify OK" (measured: OpenSSL 3.0 exits 0 on a
 *   verify failure too); for a
 *   certificate, node:crypto's X509Certificate (OpenSSL in-process) parses
 *   it, verify(issuer key) is true and both dates are readable (validFrom
 *   is not "Bad time value": OpenSSL parses a month 13 but cannot read it),
 *   and `openssl x509 -purpose` says "Any Purpose : Yes" (OpenSSL decodes
 *   the extensions it uses lazily; "No" there means one of them did not
 *   decode, ossl_x509v3_cache_extensions). For a CSR, `-text` must print
 *   "Requested Extensions:", which X509_REQ_print omits when it cannot read
 *   the extensionRequest.
 * - Post-quantum CSRs (ML-DSA-65, SLH-DSA-SHA2-128f, made with noble and
 *   @peculiar/asn1-csr; issue #12): OpenSSL 3.0 cannot load their keys, so
 *   its half is `-text` alone (exit 0, "Requested Extensions:") and noble
 *   verifies the signature on the request as @peculiar/asn1-csr reads it
 *   (nobleVerifies): a mutated PQC CSR est-ra accepts must verify there.
 * - OpenSSL alone is not the oracle: it is lenient where est-ra must be
 *   strict. Measured: it reads past trailing bytes, accepts BER lengths, and
 *   `-outform DER` is no check, because OpenSSL re-emits the signed part
 *   (CertificationRequestInfo, TBSCertificate) and names from the encoding
 *   it cached while parsing, BER included. So the DER half comes from Bouncy
 *   Castle 1.72 (test/oracle/DerOracle.java): exactly one object, its DER
 *   re-encoding (every length, SET OF order, BOOLEAN, BIT STRING rebuilt)
 *   byte-identical to the input, BC's typed RFC 2986 / RFC 5280 classes
 *   accept it, and the parts est-ra interprets parse with BC's classes.
 *
 * est-ra's verdict is the production code: parseAndVerifyCsr (400 =
 * refuse); CertificateView.parse plus verifySignedDer with the issuer key.
 * Anything else thrown (a crash that would be a 500) fails the test. Every
 * case must agree; a disagreement prints its seed, mutation and hex.
 */
describe('#9 - differential: est-ra accepts exactly what OpenSSL and Bouncy Castle accept as DER', function () {
  this.timeout(240_000);
  let dir: string;
  let seeds: Seed[];

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-differential-'));
    await mustRun('javac', ['-cp', BC_CLASSPATH, '-d', dir, ORACLE_SOURCE]);
    const key = (file: string): KeyObject => createPrivateKey(readFileSync(file));
    const p256 = await opensslCsr(dir, 'p256', {
      subject: '/CN=device-17/O=Plant/serialNumber=SN-17',
      addext: ['subjectAltName=DNS:a.example,IP:10.0.0.9', 'keyUsage=digitalSignature'],
    });
    const rsa = await opensslCsr(dir, 'rsa', { keyArgs: ['-newkey', 'rsa:2048'], subject: '/CN=rsa-device/OU=Line 3' });
    writeFileSync(
      join(dir, 'ed.cnf'),
      ['[req]', 'prompt = no', 'distinguished_name = dn', 'attributes = attrs', '[dn]', 'CN = ed-device', '[attrs]', 'challengePassword = secret-123', ''].join(
        '\n',
      ),
    );
    await mustRun('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'ed.key')]);
    await mustRun('openssl', ['req', '-new', '-key', join(dir, 'ed.key'), '-config', join(dir, 'ed.cnf'), '-outform', 'DER', '-out', join(dir, 'ed.der')]);
    const ca = await opensslSelfSigned(dir, 'ca', {
      subject: '/CN=Differential CA/O=Plant',
      addext: ['basicConstraints=critical,CA:TRUE,pathlen:1', 'keyUsage=critical,keyCertSign,cRLSign'],
    });
    const caKey = key(ca.keyFile);
    const caPublic = createPublicKey(caKey);
    const leaf = await opensslIssue(dir, 'leaf', {
      subject: '/CN=leaf-1/O=Plant',
      caFile: ca.certFile,
      caKeyFile: ca.keyFile,
      extensions: [
        'basicConstraints=CA:FALSE',
        'keyUsage=digitalSignature',
        'extendedKeyUsage=clientAuth,1.3.6.1.5.5.7.3.28',
        'subjectAltName=DNS:leaf.example',
      ],
    });
    const ra = await opensslIssue(dir, 'sub', {
      subject: '/CN=Sub CA',
      caFile: ca.certFile,
      caKeyFile: ca.keyFile,
      extensions: [
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        'keyUsage=critical,keyCertSign',
        'authorityInfoAccess=OCSP;URI:http://ocsp.example/',
        'nameConstraints=critical,permitted;DNS:.plant.example,excluded;IP:10.9.0.0/255.255.0.0',
        'crlDistributionPoints=URI:http://crl.example/root.crl',
      ],
    });
    const certDer = (file: string): Buffer => new X509Certificate(readFileSync(file)).raw;
    seeds = [
      { name: 'P-256 CSR', kind: 'csr', der: p256.csrDer, signer: { key: key(p256.keyFile), hash: 'sha256' } },
      { name: 'RSA-2048 CSR', kind: 'csr', der: rsa.csrDer, signer: { key: key(rsa.keyFile), hash: 'sha256' } },
      { name: 'Ed25519 CSR', kind: 'csr', der: readFileSync(join(dir, 'ed.der')), signer: { key: key(join(dir, 'ed.key')), hash: null } },
      { name: 'CA certificate', kind: 'cert', der: certDer(ca.certFile), signer: { key: caKey, hash: 'sha256' }, verifyKey: caPublic },
      { name: 'leaf certificate', kind: 'cert', der: certDer(leaf.certFile), signer: { key: caKey, hash: 'sha256' }, verifyKey: caPublic },
      { name: 'sub-CA certificate', kind: 'cert', der: certDer(ra.certFile), signer: { key: caKey, hash: 'sha256' }, verifyKey: caPublic },
      ...(['MLDSA-65', 'SLHDSA-SHA2-128f'] as const).map((set): Seed => {
        const pair = pqcKeyPair(set);
        const der = pqcCsr(pair, { subject: `CN=${set} device,O=Plant` });
        // SLH-DSA-SHA2-128f signs in ~150 ms with noble: fewer of its cases, each signed again.
        return { name: `${set} CSR`, kind: 'csr', der, signer: pair, pqc: true, cases: set === 'MLDSA-65' ? 1000 : 150 };
      }),
    ];
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('ok every seed is accepted by both sides before it is mutated', async () => {
    for (const seed of seeds) {
      expect(await estRaVerdict(seed, seed.der), seed.name).to.equal('accept');
      expect((await bouncyCastle(dir, [{ kind: seed.kind, der: seed.der }]))[0], seed.name).to.equal('ok');
      expect(await opensslVerdict(dir, seed, seed.der, 0), seed.name).to.equal('accept');
    }
  });

  it('#9 - 10 000+ seeded mutations of CSRs and certificates: est-ra and the oracle agree on every case', async () => {
    await expectAgreement(
      dir,
      seeds.filter((seed) => !seed.pqc),
      0,
    );
  });

  it('#12 - seeded mutations of ML-DSA-65 and SLH-DSA-SHA2-128f CSRs: est-ra accepts exactly what noble verifies and OpenSSL and Bouncy Castle read', async function () {
    // noble signs every re-signed case in JavaScript (ML-DSA-65 ~16 ms, SLH-DSA-SHA2-128f ~150 ms on an idle core).
    this.timeout(600_000);
    await expectAgreement(
      dir,
      seeds.filter((seed) => seed.pqc),
      seeds.filter((seed) => !seed.pqc).length,
    );
  });
});

/**
 * Mutates every seed (seed numbers from its index, `firstIndex` for the
 * first, so each seed keeps its cases whatever else runs) and expects
 * est-ra's verdict to equal the oracle's on every case.
 */
async function expectAgreement(dir: string, seeds: readonly Seed[], firstIndex: number): Promise<void> {
  const cases: { seed: Seed; mutation: Mutation }[] = [];
  seeds.forEach((seed, index) => {
    const s = firstIndex + index;
    for (let i = 0; i < (seed.cases ?? CASES_PER_SEED); i++) cases.push({ seed, mutation: mutate(seed.der, seed.signer, BASE_SEED + s * 100_000 + i) });
  });
  const bc = await bouncyCastle(
    dir,
    cases.map(({ seed, mutation }) => ({ kind: seed.kind, der: mutation.der })),
  );
  const oracle: Verdict[] = new Array<Verdict>(cases.length);
  // OpenSSL only where Bouncy Castle accepted (the oracle is a conjunction), two subprocesses at a time.
  let next = 0;
  const worker = async (slot: number): Promise<void> => {
    for (let i = next++; i < cases.length; i = next++) {
      oracle[i] = bc[i] === 'ok' ? await opensslVerdict(dir, cases[i]!.seed, cases[i]!.mutation.der, slot) : 'refuse';
    }
  };
  await Promise.all([worker(0), worker(1)]);
  const disagreements: string[] = [];
  const crashes: string[] = [];
  let accepted = 0;
  for (const [i, { seed, mutation }] of cases.entries()) {
    let ours: Verdict;
    try {
      ours = await estRaVerdict(seed, mutation.der);
    } catch (err) {
      crashes.push(`${caseText(seed, mutation)}: ${err instanceof Error ? err.stack : String(err)}`);
      continue;
    }
    if (ours === 'accept') accepted++;
    if (ours !== oracle[i])
      disagreements.push(`${caseText(seed, mutation)}: est-ra ${ours}s, oracle ${oracle[i]}s (Bouncy Castle: ${bc[i]}) hex=${mutation.der.toString('hex')}`);
  }
  console.log(
    `      differential: ${cases.length} cases, ${disagreements.length} disagreements, ${crashes.length} crashes (${accepted} accepted by both sides)`,
  );
  for (const line of [...crashes, ...disagreements].slice(0, Number(process.env.DIFFERENTIAL_SHOW ?? 10))) console.log(`      ${line}`);
  expect(crashes, 'est-ra threw something other than a refusal').to.deep.equal([]);
  expect(disagreements.length, 'disagreements with the oracle').to.equal(0);
}

function caseText(seed: Seed, mutation: Mutation): string {
  return `${seed.name} seed=${mutation.seed} mutation=${mutation.kind}`;
}

/** est-ra's production readers; throws on anything that is not a refusal (a 500 in production). */
async function estRaVerdict(seed: Seed, der: Buffer): Promise<Verdict> {
  if (seed.kind === 'csr') {
    try {
      await parseAndVerifyCsr(der);
      return 'accept';
    } catch (err) {
      if (err instanceof EstError && err.status === 400) return 'refuse';
      throw err;
    }
  }
  let view: CertificateView;
  try {
    view = CertificateView.parse(der);
  } catch (err) {
    if (err instanceof DerError) return 'refuse';
    throw err;
  }
  return (await verifySignedDer(view.der, seed.verifyKey!)) === true ? 'accept' : 'refuse';
}

/** OpenSSL's half of the oracle (see the describe block). */
async function opensslVerdict(dir: string, seed: Seed, der: Buffer, slot: number): Promise<Verdict> {
  if (seed.kind === 'csr') {
    const file = join(dir, `case-${slot}.der`);
    writeFileSync(file, der);
    // OpenSSL 3.0 exits 0 even on "self-signature verify failure": its message decides.
    if (seed.pqc) {
      // OpenSSL 3.0 cannot load the key ("Unable to load Public Key") but reads everything else; noble checks the signature.
      const parsed = await run('openssl', ['req', '-inform', 'DER', '-in', file, '-noout', '-text']);
      return parsed.code === 0 && /Requested Extensions:/.test(parsed.stdout) && nobleVerifies(der) ? 'accept' : 'refuse';
    }
    const result = await run('openssl', ['req', '-inform', 'DER', '-in', file, '-verify', '-noout', '-text']);
    const verified = result.code === 0 && /self-signature verify OK/.test(result.stderr + result.stdout);
    // X509_REQ_print prints "Requested Extensions:" only when X509_REQ_get_extensions could read them (an empty list included).
    return verified && /Requested Extensions:/.test(result.stdout) ? 'accept' : 'refuse';
  }
  try {
    const certificate = new X509Certificate(der);
    const datesReadable = certificate.validFrom !== 'Bad time value' && certificate.validTo !== 'Bad time value';
    if (!datesReadable || !certificate.verify(seed.verifyKey!)) return 'refuse';
  } catch {
    return 'refuse';
  }
  // OpenSSL decodes the extensions it uses (basicConstraints, keyUsage, EKU, SAN, key identifiers,
  // CRL distribution points, name constraints) lazily; "Any Purpose : No" means one did not decode.
  const file = join(dir, `case-${slot}.der`);
  writeFileSync(file, der);
  const purposes = await run('openssl', ['x509', '-inform', 'DER', '-in', file, '-noout', '-purpose']);
  return purposes.code === 0 && /^Any Purpose : Yes$/m.test(purposes.stdout) ? 'accept' : 'refuse';
}

/**
 * The proof of possession of a post-quantum CSR as noble judges it, on the
 * request as @peculiar/asn1-csr reads it (not est-ra's reader): the key's
 * OID names an ML-DSA / SLH-DSA set (test/helpers/pqc-csr.ts), key and
 * signature AlgorithmIdentifiers are that OID with parameters absent
 * (RFC 9881 §2, draft-ietf-lamps-x509-slhdsa §3), and noble verifies the
 * signature over the CertificationRequestInfo as encoded. The signature and
 * the key are octet strings in BIT STRINGs: one with bits left over is
 * refused, as OpenSSL refuses it for the classic CSRs above (ASN1_item_verify:
 * "invalid bit string bits left"); asn1-schema's reader drops that count, so
 * asn1js reads it here.
 */
function nobleVerifies(der: Buffer): boolean {
  try {
    const outer = asn1js.fromBER(new Uint8Array(der)).result as asn1js.Sequence;
    const [info, , signatureBits] = outer.valueBlock.value as [asn1js.Sequence, asn1js.Sequence, asn1js.BitString];
    const keyBits = (info.valueBlock.value[2] as asn1js.Sequence).valueBlock.value[1] as asn1js.BitString;
    if (signatureBits.valueBlock.unusedBits !== 0 || keyBits.valueBlock.unusedBits !== 0) return false;
    const request = AsnConvert.parse(der, CertificationRequest);
    const { algorithm, subjectPublicKey } = request.certificationRequestInfo.subjectPKInfo;
    const set = Object.values(PQC_SETS).find(({ oid }) => oid === algorithm.algorithm);
    if (!set || algorithm.parameters != null || request.signatureAlgorithm.parameters != null) return false;
    if (request.signatureAlgorithm.algorithm !== algorithm.algorithm || !request.certificationRequestInfoRaw) return false;
    return set.noble.verify(new Uint8Array(request.signature), new Uint8Array(request.certificationRequestInfoRaw), new Uint8Array(subjectPublicKey));
  } catch {
    return false;
  }
}

/** Bouncy Castle's half: one JVM for the whole batch, one verdict line per case. */
function bouncyCastle(dir: string, cases: readonly { kind: 'csr' | 'cert'; der: Buffer }[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('java', ['-cp', `${BC_CLASSPATH}:${dir}`, 'DerOracle'], { maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`DerOracle: ${error.message}\n${stderr}`));
      else resolve(stdout.trimEnd().split('\n'));
    });
    child.stdin!.end(cases.map(({ kind, der }) => `${kind} ${der.toString('hex')}\n`).join(''));
  });
}
