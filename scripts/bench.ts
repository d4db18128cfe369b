/**
 * Enrollment benchmark: runs est-ra on the embedded default (`init` + `serve`)
 * as a child process and drives /simpleenroll at concurrency 1, 8 and 32 with
 * a new full TLS handshake per request, then measures what one enrollment is
 * made of. A fresh est-ra then authenticates simpleenroll by client
 * certificate (one device certificate of an openssl-ca CA, revocation
 * hard_fail over a live OCSP responder, then off) at c32. Then, on a fresh
 * est-ra with init's limits (scripts/bench-hostile.ts): 256 devices at once
 * from eight source addresses (127.0.0.1-8; one address may hold only 64
 * connections), with zero errors; and a hostile address, 127.0.0.2, in its
 * own process (scripts/bench-attacker.ts) at the lowest CPU priority,
 * holding its connection cap (plain TCP that never starts TLS, reopened when
 * closed, and more than the cap, refused and reopened at once) and flooding
 * refused requests (wrong passcode, no credential, garbage bodies) whatever
 * the answer (401, 429 + Retry-After): a legitimate c8 from 127.0.0.1 is
 * measured quiet, then under the flood (p50/p99 ratios), and what the store
 * grows by per minute of flood alone. Then a second est-ra, the RA, forwards to the first one
 * (`upstream: est`): what the RA hop adds at c32, how few upstream
 * connections its keep-alive needs, and how fast its queue drains after an
 * upstream outage. On a fresh est-ra of its own, serverkeygen: est-ra makes the key (P-256, then
 * RSA-2048) for each request at c8. Prints one JSON object on stdout;
 * progress goes to stderr.
 *
 * Linux only: the children's RSS and CPU time are read from /proc, the RA's
 * upstream connections from ss (iproute2); the source addresses 127.0.0.2-8
 * are loopback's own.
 *
 *   npm run bench
 *   BENCH_SECTIONS=mtls npm run bench      # only some of: levels, mtls, hostile, ra, serverkeygen, pqc, cluster
 *
 * The pqc section (scripts/bench-pqc.ts) runs first, in this process: the CPU
 * cost of checking one ML-DSA-65, SLH-DSA-SHA2-128s and SLH-DSA-SHAKE-256f CSR.
 *
 * The cluster section (scripts/bench-cluster.ts, issue #13) runs after
 * serverkeygen: c32 on one node on SQLite, one node on PostgreSQL and two
 * nodes on PostgreSQL behind HAProxy, with the CPU per enrollment of every
 * process (est-ra, PostgreSQL, HAProxy, driver). Needs PostgreSQL and haproxy
 * (scripts/install-test-tools.sh).
 */
// @peculiar/x509's decorators need reflect-metadata loaded before the library.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import Database from 'better-sqlite3';
import { randomBytes, scryptSync, webcrypto } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect, createSecureContext } from 'node:tls';
import { promisify } from 'node:util';
import * as pkijs from 'pkijs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { buildCertsOnly, parseCertsOnly } from '../src/pki/certs-only.js';
import { parseAndVerifyCsr } from '../src/pki/csr.js';
import { privateKeyToPem } from '../src/pki/certificate-builder.js';
import { bytes } from '../src/pki/x509.js';
import { newSerialNumber } from '../src/pki/serial.js';
import { hashPasscode } from '../src/auth/passcode.js';
import { LocalCaUpstream, type IssuancePolicy } from '../src/upstream/local-ca.js';
import { verifyIssued } from '../src/upstream/verify-issued.js';
import { configSchema } from '../src/config/schema.js';
import { sampleConfig } from '../src/config/sample.js';
import { compileProfileRules } from '../src/policy/compile-rules.js';
import { readNames } from '../src/pki/names.js';
import type { VerifiedCsr } from '../src/pki/csr.js';
import { CertificateView, viewOf } from '../src/pki/certificate-view.js';
import { validatePath, validatePathUncached } from '../src/pki/path-validation.js';
import { makeRevocationCa } from '../test/helpers/revocation-pki.js';
import {
  checkOneEnrollment,
  contextAgent,
  countBy,
  cpuMs,
  enroll,
  freePort,
  csrCycle,
  makeDeviceKeys,
  medianRound,
  progress,
  round,
  runCount,
  runLevel,
  cleanUps,
  running,
  sampleRss,
  serveEstRa,
  signCsr,
  sleep,
  startEstRa,
  stopEstRa,
  targetOf,
  type DeviceKey,
  type EstRa,
  type LevelResult,
  type RoundResult,
  type Target,
} from './bench-lib.js';
import { benchHostile, HOSTILE_TARGETS, hostileTargetsMet, type HostileResults } from './bench-hostile.js';
import { benchPqc, type PqcCost } from './bench-pqc.js';
import { benchCluster, type ClusterResults } from './bench-cluster.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'levels,mtls,hostile,ra,serverkeygen,pqc,cluster').split(','));
const LEVELS = (process.env.BENCH_LEVELS ?? '1,8,32').split(',').map(Number);
/** Each level runs several rounds and reports the median one: this VM's neighbours make single runs swing by ±25 %. */
const LEVEL_ROUNDS = 3;
const ROUND_SECONDS = 5;
const WARMUP_SECONDS = 2;
const DEVICE_KEYS = 200;
const BREAKDOWN_ITERATIONS = 500;
/** The RA comparison's load, as the c32 level. */
const RA_CONCURRENCY = 32;
/** What the RA profile allows itself towards the upstream (est.max_sockets). */
const RA_MAX_SOCKETS = 32;
const SOCKET_SAMPLE_MS = 250;
const DRAIN_REQUESTS = 1000;
const DRAIN_TIMEOUT_S = 120;
const DRAIN_POLL_MS = 100;
const TARGETS = {
  c32_enrollments_per_s_min: 450,
  p99_ms_max: 150,
  peak_rss_mb_max: 150,
  ra_added_p50_ms_max: 5,
  ra_added_p99_ms_max: 15,
  ra_upstream_connections_max: RA_MAX_SOCKETS,
  queue_drain_per_s_min: 200,
  forward_to_local_cpu_ratio_max: 1,
  mtls_c32_enrollments_per_s_min: 350,
  ...HOSTILE_TARGETS,
} as const;
/** The client-certificate section's load, as the c32 level. */
const MTLS_CONCURRENCY = 32;
/** The serverkeygen section's load: key generation is CPU-bound (RSA-2048 takes tens of ms), so c8, not c32. */
const SERVERKEYGEN_CONCURRENCY = 8;
/** The key types the serverkeygen section measures, each a profile that allows only it (so a P-256 CSR gets that type). */
const SERVERKEYGEN_KEY_TYPES = ['p_256', 'rsa_2048'] as const;

/** The demo profile's issuance settings, for the breakdown's own local CA. */
const BENCH_POLICY: IssuancePolicy = {
  validityMs: 365 * 86_400_000,
  keyUsage: { rsa: ['digital_signature', 'key_encipherment'], ecdsa: ['digital_signature', 'key_agreement'], eddsa: ['digital_signature'] },
  extendedKeyUsage: ['client_authentication'],
  signatureAlgorithm: 'match_issuer',
};

const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA_SHA256: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

// ------------------------------------------------------------------ RA setup

/** A throwaway RA identity: the upstream est-ra authenticates simpleenroll by passcode and ignores the client certificate. */
async function makeRaIdentity(dir: string): Promise<{ certificate: string; key: string }> {
  const certificate = join(dir, 'ra.crt');
  const key = join(dir, 'ra.key');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=bench-ra', '-days', '365'];
  await promisify(execFile)('openssl', [...args, '-keyout', key, '-out', certificate]);
  return { certificate, key };
}

/**
 * Turns the RA's demo profile into `upstream: est` towards `upstream`,
 * keeping everything else (local_ca: included) as init wrote it. Comments
 * are lost in the round trip; nobody reads this copy.
 */
function raProfile(upstream: EstRa): (stateDir: string) => Promise<void> {
  return async (stateDir) => {
    const identity = await makeRaIdentity(stateDir);
    const passcodeFile = join(stateDir, 'upstream-passcode.txt');
    writeFileSync(passcodeFile, `${upstream.passcode}\n`, { mode: 0o600 });
    const configFile = join(stateDir, 'config.yaml');
    const config = parseYaml(readFileSync(configFile, 'utf8')) as { profiles: Record<string, Record<string, unknown>> };
    config.profiles['demo'] = {
      ...config.profiles['demo'],
      upstream: 'est',
      est: {
        url: `https://127.0.0.1:${upstream.port}/.well-known/est`,
        ra_certificate: identity.certificate,
        ra_key: identity.key,
        trust_anchors: [join(upstream.stateDir, 'pki', 'root-ca.crt')],
        username: 'est-ra',
        passcode: { file: passcodeFile },
        timeout_ms: 5000,
        max_sockets: RA_MAX_SOCKETS,
      },
    };
    writeFileSync(configFile, stringifyYaml(config));
  };
}

// ------------------------------------------------------ RA → upstream sockets

/**
 * The TCP connections `pid` itself holds, ESTABLISHED, to remote port
 * `port`, by local port. ss asks the kernel (sock_diag) for just those
 * sockets, and -p names the process holding each. Parsing
 * /proc/<pid>/net/tcp instead means reading every socket of the network
 * namespace, including the thousands in TIME_WAIT that one handshake per
 * request leaves behind: at 20 samples/s that doubled the driver's CPU per
 * enrollment and took it from the RA being measured.
 */
async function connectionsTo(pid: number, port: number): Promise<Set<string>> {
  const { stdout } = await promisify(execFile)('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`]);
  const found = new Set<string>();
  for (const line of stdout.split('\n')) {
    // Local-Address:Port Peer-Address:Port users:(("node",pid=123,fd=45)); the state column is left out when filtering by state.
    const [, , local] = line.trim().split(/\s+/);
    if (local && line.includes(`pid=${pid},`)) found.add(local.slice(local.lastIndexOf(':') + 1));
  }
  return found;
}

interface ConnectionWatch {
  /** Most connections open at once in any sample. */
  max: number;
  /** Every connection seen in any sample, by local port. */
  readonly seen: Set<string>;
  samples: number;
}

/**
 * Samples the RA's upstream connections until `stop`, adding to `watch`.
 * Keep-alive connections live for the whole round, so a few samples a
 * second see them all; activeOpens() counts the short-lived ones exactly.
 */
function watchConnections(pid: number, port: number, watch: ConnectionWatch): { stop(): Promise<void> } {
  let failure: unknown;
  // Errors are kept for stop(): a rejection nobody awaits yet would end the bench without stopping the children.
  const sample = async (): Promise<void> => {
    try {
      const now = await connectionsTo(pid, port);
      watch.max = Math.max(watch.max, now.size);
      for (const key of now) watch.seen.add(key);
      watch.samples++;
    } catch (err) {
      failure ??= err;
    }
  };
  let last = sample();
  const timer = setInterval(() => {
    last = last.then(sample);
  }, SOCKET_SAMPLE_MS);
  return {
    async stop() {
      clearInterval(timer);
      await last.then(sample);
      if (failure !== undefined) throw new Error("sampling the RA's upstream connections with ss failed", { cause: failure });
    },
  };
}

/**
 * The kernel's count of outgoing TCP connections (Tcp ActiveOpens in
 * /proc/net/snmp): exact where the socket samples could miss a connection
 * that lived less than a sample interval, but it counts the whole network
 * namespace: runViaRa takes off the driver's one per request, and nothing
 * else on this machine connects while a round runs.
 */
function activeOpens(): number {
  const [names, values] = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('Tcp:'))
    .map((line) => line.split(/\s+/));
  return Number(values![names!.indexOf('ActiveOpens')]);
}

async function p256Keys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
}

// ----------------------------------------------------------------- breakdown

/** What one call costs on average: CPU time of this whole process (WebCrypto runs on libuv threads, which count too) and wall time. */
interface OpCost {
  readonly cpu_ms: number;
  readonly wall_ms: number;
}

/** A few untimed calls first, so the JIT has settled and lazy initialisation is done. */
async function warmUp(op: () => unknown): Promise<void> {
  for (let i = 0; i < 20; i++) await op();
}

async function costPerOp(iterations: number, op: () => unknown): Promise<OpCost> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) await op();
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return { cpu_ms: round((cpu.user + cpu.system) / 1000 / iterations, 4), wall_ms: round(wallMs / iterations, 4) };
}

/** connect + close with a fresh session each time: a full handshake, as each enrollment does. */
function tlsHandshake(port: number, ca: Buffer): Promise<void> {
  return new Promise((done, fail) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      const resumed = socket.isSessionReused();
      socket.destroy();
      if (resumed) fail(new Error('TLS session was resumed'));
    });
    socket.once('close', () => done());
    socket.once('error', fail);
  });
}

/** An issuing CA like the embedded one, to sign end-entity certificates both ways. */
async function makeIssuer(): Promise<{ keys: CryptoKeyPair; certificate: x509.X509Certificate; keyPem: string }> {
  const keys = await p256Keys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=bench issuing CA',
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  return { keys, certificate, keyPem: await privateKeyToPem(keys.privateKey) };
}

/** A root (no pathLen) and an intermediate under it, as a manufacturer's line CA; the intermediate as a local CA's issuer. */
async function makeRootAndIntermediate(): Promise<{ root: x509.X509Certificate; intermediate: x509.X509Certificate; intermediateKeyPem: string }> {
  const rootKeys = await p256Keys();
  const caExtensions = [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)];
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=bench manufacturer root',
    keys: rootKeys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [...caExtensions, await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey)],
  });
  const keys = await p256Keys();
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: newSerialNumber(),
    subject: 'CN=bench line CA',
    issuer: root.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [...caExtensions, await x509.SubjectKeyIdentifierExtension.create(keys.publicKey), await x509.AuthorityKeyIdentifierExtension.create(root)],
  });
  return { root, intermediate, intermediateKeyPem: await privateKeyToPem(keys.privateKey) };
}

/** The library path est-ra's local CA replaced: @peculiar/x509's generator with the same extensions. */
async function librarySignOp(csr: x509.Pkcs10CertificateRequest, issuer: Awaited<ReturnType<typeof makeIssuer>>): Promise<() => Promise<x509.X509Certificate>> {
  const aki = await x509.AuthorityKeyIdentifierExtension.create(issuer.certificate);
  return async () =>
    x509.X509CertificateGenerator.create({
      serialNumber: newSerialNumber(),
      subject: csr.subjectName,
      issuer: issuer.certificate.subjectName,
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 365 * 86_400_000),
      publicKey: csr.publicKey,
      signingKey: issuer.keys.privateKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
        aki,
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
}

/** The library path est-ra's certs-only builder replaced: pkijs SignedData. */
function pkijsCertsOnly(certificateDer: Buffer): Buffer {
  const signedData = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: '1.2.840.113549.1.7.1' }),
    certificates: [pkijs.Certificate.fromBER(bytes(certificateDer))],
  });
  const contentInfo = new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: signedData.toSchema(true) });
  return Buffer.from(contentInfo.toSchema().toBER(false));
}

interface Breakdown {
  readonly iterations: number;
  /** est-ra's own steps, as the request path runs them. */
  readonly est_ra: {
    readonly csr_parse_and_verify_p256: OpCost;
    readonly certificate_sign_p256: OpCost;
    readonly certs_only_pkcs7_build: OpCost;
    readonly passcode_sha256: OpCost;
    /** As an RA: the upstream's answer parsed (pkijs) ... */
    readonly ra_certs_only_parse: OpCost;
    /**
     * ... and checked whole (parse, key match, path validation as for client certificates, identity) before a
     * device sees it. Timed on one answer, so its validated path is remembered after the first check: a real
     * answer, a new certificate each time, costs path_validation_direct more (the RA section's CPU shows it).
     */
    readonly ra_verify_upstream_answer: OpCost;
    /**
     * Path validation of a client certificate (pkijs engine + est-ra's pathLen
     * and critical-extension checks), per mTLS enrollment: the device
     * certificate directly under a configured CA, and through an intermediate
     * it sends (parsed once, as every device of a line sends the same one).
     * The device certificate is parsed anew each time, as each enrollment's is.
     */
    readonly path_validation_direct: OpCost;
    readonly path_validation_via_sent_intermediate: OpCost;
    /** The same certificate again (a downstream RA on every request, a device polling after 202): remembered. */
    readonly path_validation_remembered: OpCost;
    /** The subject and SAN policy (names read by asn1-x509, the demo profile's rules). */
    readonly subject_policy: OpCost;
    /** cpu_ms is the client side; est_ra_cpu_ms what the server spent on the same handshakes. */
    readonly tls_full_handshake: OpCost & { readonly est_ra_cpu_ms: number };
  };
  /** The library paths those steps replaced, and the slow hash they avoid, for comparison. */
  readonly alternatives: {
    readonly x509_csr_parse_and_verify_p256: OpCost;
    readonly x509_generator_sign_p256: OpCost;
    readonly pkijs_certs_only_build: OpCost;
    readonly scrypt_passcode_n16384: OpCost;
  };
}

/** What one enrollment is made of, each operation measured on its own in this process. */
async function measureBreakdown(estRa: EstRa, csrDer: ArrayBuffer): Promise<Breakdown> {
  const n = BREAKDOWN_ITERATIONS;
  const measure = async (op: () => unknown, iterations = n): Promise<OpCost> => {
    await warmUp(op);
    return costPerOp(iterations, op);
  };
  const der = Buffer.from(csrDer);
  const csr = new x509.Pkcs10CertificateRequest(csrDer);
  const verified = await parseAndVerifyCsr(der);
  const issuer = await makeIssuer();
  const upstream = await LocalCaUpstream.create(issuer.keyPem, [issuer.certificate], BENCH_POLICY, () => new Date());
  // The subject policy of the demo profile that `est-ra init` writes, as the enrollment runs above use it.
  const demoNames = compileProfileRules(configSchema.parse(parseYaml(sampleConfig({ port: 8443, host: '127.0.0.1' }))).profiles.demo!).names;
  const decideNames = (csr: VerifiedCsr) => demoNames.decide(readNames(csr.subjectDer, csr.subjectAltName));
  const names = decideNames(verified);
  const issuedDer = (await upstream.simpleEnroll(verified, { requestId: 'bench', profile: 'bench' }, names)).der;
  const answer = buildCertsOnly([issuedDer]);
  const expectation = { subjectPublicKeyInfo: verified.subjectPublicKeyInfo, caCertificates: [issuer.certificate], now: new Date() };
  const librarySign = await librarySignOp(csr, issuer);
  const handshake = (): Promise<void> => tlsHandshake(estRa.port, estRa.rootCa);
  const salt = randomBytes(16);

  const line = await makeRootAndIntermediate();
  const lineUpstream = await LocalCaUpstream.create(line.intermediateKeyPem, [line.intermediate], BENCH_POLICY, () => new Date());
  const deviceUnderLine = Buffer.from((await lineUpstream.simpleEnroll(verified, { requestId: 'bench', profile: 'bench' }, names)).der);
  const sentIntermediate = Buffer.from(line.intermediate.rawData);
  const validate = async (certificate: Buffer, anchors: readonly x509.X509Certificate[], intermediates: readonly Buffer[]): Promise<void> => {
    const path = await validatePathUncached({ certificate: CertificateView.parse(certificate), anchors: anchors.map(viewOf), intermediates, now: new Date() });
    if (!path.ok) throw new Error(`path validation failed: ${path.reason}`);
  };

  const estRaSteps = {
    csr_parse_and_verify_p256: await measure(() => parseAndVerifyCsr(der)),
    subject_policy: await measure(() => decideNames(verified)),
    certificate_sign_p256: await measure(() => upstream.simpleEnroll(verified, { requestId: 'bench', profile: 'bench' }, names)),
    certs_only_pkcs7_build: await measure(() => buildCertsOnly([issuedDer])),
    passcode_sha256: await measure(() => hashPasscode(estRa.passcode)),
    ra_certs_only_parse: await measure(() => parseCertsOnly(answer)),
    ra_verify_upstream_answer: await measure(() => verifyIssued(answer, expectation)),
    path_validation_direct: await measure(() => validate(Buffer.from(issuedDer), [issuer.certificate], [])),
    path_validation_via_sent_intermediate: await measure(() => validate(deviceUnderLine, [line.root], [sentIntermediate])),
    // The same certificate again (a downstream RA, a device polling after 202): the engine's remembered verdict.
    path_validation_remembered: await measure(async () => {
      if (
        !(
          await validatePath({
            certificate: CertificateView.parse(deviceUnderLine),
            anchors: [viewOf(line.root)],
            intermediates: [sentIntermediate],
            now: new Date(),
          })
        ).ok
      )
        throw new Error('path validation failed');
    }),
  };
  const alternatives = {
    x509_csr_parse_and_verify_p256: await measure(async () => {
      if (!(await new x509.Pkcs10CertificateRequest(csrDer).verify())) throw new Error('CSR signature did not verify');
    }),
    x509_generator_sign_p256: await measure(librarySign),
    pkijs_certs_only_build: await measure(() => pkijsCertsOnly(issuedDer)),
    scrypt_passcode_n16384: await measure(() => scryptSync(estRa.passcode, salt, 32, { N: 16384 }), 20),
  };
  // Warmed up apart from the timed loop, so est-ra's CPU delta covers exactly n handshakes.
  await warmUp(handshake);
  const estRaCpuBefore = cpuMs(estRa.pid);
  const tls = await costPerOp(n, handshake);
  const estRaCpuMs = round((cpuMs(estRa.pid) - estRaCpuBefore) / n, 3);
  return { iterations: n, est_ra: { ...estRaSteps, tls_full_handshake: { ...tls, est_ra_cpu_ms: estRaCpuMs } }, alternatives };
}

// ------------------------------------------------------------- RA overhead

interface RaPath extends LevelResult {
  /** The upstream's CPU time per enrollment forwarded through the RA; est_ra_cpu_ms_per_enrollment is the RA's. */
  readonly upstream_cpu_ms_per_enrollment: number;
}

interface RaOverhead {
  readonly concurrency: number;
  readonly via_ra: RaPath & { rounds_enrollments_per_s: number[] };
  readonly direct: RoundResult;
  readonly added_p50_ms: number;
  readonly added_p99_ms: number;
  /** One round each at c1: what the hop costs with no queue in front of the two cores. */
  readonly c1_reference: { readonly via_ra_p50_ms: number; readonly direct_p50_ms: number; readonly added_p50_ms: number };
  /**
   * The RA's CPU per enrollment it forwarded against the upstream's CPU per
   * enrollment it signed with its local CA, in the same rounds (issue #11:
   * forwarding should cost no more than signing locally).
   */
  readonly ra_cpu_ms_per_forwarded_enrollment: number;
  readonly local_ca_cpu_ms_per_enrollment: number;
  readonly forward_to_local_cpu_ratio: number;
}

interface UpstreamKeepAlive {
  /** simpleenroll lines the upstream logged during the RA rounds. */
  readonly requests_forwarded: number;
  /**
   * Outgoing TCP connections opened during the RA rounds, less the driver's
   * one per device request. Each RA round may open its pool anew: the 5 s
   * direct round before it outlasts the upstream's keep_alive_timeout_ms.
   */
  readonly connections_opened: number;
  readonly requests_per_connection: number;
  /** Most RA → upstream connections open at once, sampled every SOCKET_SAMPLE_MS. */
  readonly max_connections_seen: number;
  /** Counts also those the warm-up opened and the first round still used. */
  readonly distinct_connections_seen: number;
  readonly samples: number;
  readonly max_sockets: number;
}

/** Tallies what the RA did towards the upstream over its rounds. */
interface UpstreamTally {
  readonly watch: ConnectionWatch;
  forwarded: number;
  opened: number;
}

/**
 * One round device → RA → upstream, with the upstream's CPU time, its
 * simpleenroll log lines and the RA's connections to it counted alongside.
 */
async function runViaRa(ra: EstRa, upstream: EstRa, nextCsr: () => string, concurrency: number, tally: UpstreamTally): Promise<RaPath> {
  const upstreamCpuBefore = cpuMs(upstream.pid);
  const logStart = statSync(upstream.logFile).size;
  const opensBefore = activeOpens();
  const sockets = watchConnections(ra.pid, upstream.port, tally.watch);
  const result = await runLevel(targetOf(ra), ra.pid, nextCsr, concurrency, ROUND_SECONDS);
  await sockets.stop();
  // The upstream logs each request when its answer is sent, so every line of this round is written once the driver has all answers.
  tally.forwarded += countMatching(readFileSync(upstream.logFile).subarray(logStart).toString('utf8'), '"operation":"simpleenroll"');
  tally.opened += activeOpens() - opensBefore - result.requests;
  const ok = result.requests - result.errors;
  return { ...result, upstream_cpu_ms_per_enrollment: round((cpuMs(upstream.pid) - upstreamCpuBefore) / Math.max(ok, 1), 2) };
}

/**
 * Device → RA → upstream against device → upstream, rounds alternating so
 * that both paths see the same neighbours, the median round of each.
 */
async function measureRaOverhead(ra: EstRa, upstream: EstRa, nextCsr: () => string): Promise<{ overhead: RaOverhead; keepAlive: UpstreamKeepAlive }> {
  const direct = targetOf(upstream);
  await checkOneEnrollment(targetOf(ra), nextCsr());
  progress(`RA warm-up: ${WARMUP_SECONDS} s at c8`);
  await runLevel(targetOf(ra), ra.pid, nextCsr, 8, WARMUP_SECONDS);

  const tally: UpstreamTally = { watch: { max: 0, seen: new Set(), samples: 0 }, forwarded: 0, opened: 0 };
  const viaRa: RaPath[] = [];
  const directRounds: LevelResult[] = [];
  for (let round = 1; round <= LEVEL_ROUNDS; round++) {
    progress(`RA c${RA_CONCURRENCY} round ${round}/${LEVEL_ROUNDS}: ${ROUND_SECONDS} s via the RA, ${ROUND_SECONDS} s direct`);
    viaRa.push(await runViaRa(ra, upstream, nextCsr, RA_CONCURRENCY, tally));
    progress(`via RA: ${JSON.stringify(viaRa.at(-1))}`);
    directRounds.push(await runLevel(direct, upstream.pid, nextCsr, RA_CONCURRENCY, ROUND_SECONDS));
    progress(`direct: ${JSON.stringify(directRounds.at(-1))}`);
  }
  progress(`RA c1 reference: ${ROUND_SECONDS} s via the RA, ${ROUND_SECONDS} s direct`);
  const c1ViaRa = await runViaRa(ra, upstream, nextCsr, 1, tally);
  const c1Direct = await runLevel(direct, upstream.pid, nextCsr, 1, ROUND_SECONDS);

  const via = medianRound(viaRa);
  const straight = medianRound(directRounds);
  return {
    overhead: {
      concurrency: RA_CONCURRENCY,
      via_ra: via,
      direct: straight,
      added_p50_ms: round(via.p50_ms - straight.p50_ms, 1),
      added_p99_ms: round(via.p99_ms - straight.p99_ms, 1),
      c1_reference: { via_ra_p50_ms: c1ViaRa.p50_ms, direct_p50_ms: c1Direct.p50_ms, added_p50_ms: round(c1ViaRa.p50_ms - c1Direct.p50_ms, 1) },
      ra_cpu_ms_per_forwarded_enrollment: via.est_ra_cpu_ms_per_enrollment,
      local_ca_cpu_ms_per_enrollment: straight.est_ra_cpu_ms_per_enrollment,
      forward_to_local_cpu_ratio: round(via.est_ra_cpu_ms_per_enrollment / straight.est_ra_cpu_ms_per_enrollment, 2),
    },
    keepAlive: {
      requests_forwarded: tally.forwarded,
      connections_opened: tally.opened,
      requests_per_connection: round(tally.forwarded / Math.max(tally.opened, 1), 1),
      max_connections_seen: tally.watch.max,
      distinct_connections_seen: tally.watch.seen.size,
      samples: tally.watch.samples,
      max_sockets: RA_MAX_SOCKETS,
    },
  };
}

// -------------------------------------------------------------- queue drain

interface QueueDrain {
  readonly requests: number;
  /** Answers 202 with a Retry-After header: queued by the RA while the upstream was down. */
  readonly accepted_202: number;
  /** Any other answers, by status (0: no answer). */
  readonly other_answers: Record<string, number>;
  readonly retry_after_s: { readonly min: number; readonly max: number } | null;
  readonly send_seconds: number;
  /** Forwarding attempts that failed during the outage (the RA's 'request queued' warnings), each one a step of the probe backoff. */
  readonly failed_attempts_logged: number;
  /** The longest wait until the next probe the RA announced (retry_at − timestamp in those warnings). */
  readonly longest_probe_wait_s: number;
  /** From the restarted upstream's 'listening' (seen within 20 ms). */
  readonly seconds_to_first_issue: number | null;
  readonly seconds_to_all_issued: number | null;
  /** Issued per second between the first poll that saw an issue and the one that saw all (polls every DRAIN_POLL_MS). */
  readonly drain_per_s: number | null;
  /** CPU time per request issued in that window, of the RA and of the upstream. */
  readonly ra_cpu_ms_per_enrollment: number | null;
  readonly upstream_cpu_ms_per_enrollment: number | null;
  readonly issued: number;
  readonly timed_out: boolean;
}

/** Issued requests in the RA's store, read as an outsider would: a read-only connection to its SQLite file. */
function issuedCounter(ra: EstRa): { count(): number; close(): void } {
  const db = new Database(join(ra.stateDir, 'est-ra.db'), { readonly: true, fileMustExist: true });
  const statement = db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM requests WHERE state = 'issued'`);
  return { count: () => statement.get()!.n, close: () => db.close() };
}

/**
 * Stops the upstream, sends DRAIN_REQUESTS enrollments to the RA (each
 * must be queued: 202 + Retry-After), starts the upstream again and times
 * how the RA's retry worker gets them issued. The worker probes a failing
 * upstream with a growing backoff (1 s, 2 s, 4 s ... up to 60 s), so the
 * wait for the first issue is mostly that probe delay; drain_per_s is the
 * speed once the probe succeeded. The restarted upstream is left running,
 * for the bench's clean-up to stop.
 */
async function measureQueueDrain(ra: EstRa, upstream: EstRa, nextCsr: () => string): Promise<QueueDrain> {
  progress('queue drain: stopping the upstream');
  await stopEstRa(upstream.child);
  const issued = issuedCounter(ra);
  try {
    const issuedBefore = issued.count();
    const raLogStart = statSync(ra.logFile).size;
    progress(`queue drain: ${DRAIN_REQUESTS} enrollments at c${RA_CONCURRENCY} to the RA`);
    const sendStarted = performance.now();
    const outcomes = await runCount(targetOf(ra), nextCsr, RA_CONCURRENCY, DRAIN_REQUESTS);
    const sendSeconds = (performance.now() - sendStarted) / 1000;
    const accepted = outcomes.filter((o) => o.status === 202 && o.retryAfter !== undefined);
    const retryAfters = accepted.map((o) => Number(o.retryAfter));

    progress(`queue drain: ${accepted.length} queued; starting the upstream again`);
    const restarted = await serveEstRa(upstream.stateDir, upstream.port, upstream.passcode);
    const listeningAt = performance.now();
    const drained = await pollIssued(issued, issuedBefore, accepted.length, listeningAt, ra.pid, restarted.pid);
    const probeWaits = queuedWarnings(readFileSync(ra.logFile).subarray(raLogStart).toString('utf8'));
    const seconds = (at: number | undefined): number | null => (at === undefined ? null : round((at - listeningAt) / 1000, 2));
    progress(`queue drain: ${drained.reached}/${accepted.length} issued`);
    return {
      requests: DRAIN_REQUESTS,
      accepted_202: accepted.length,
      other_answers: countBy(outcomes.filter((o) => !accepted.includes(o)).map((o) => String(o.status))),
      retry_after_s: retryAfters.length > 0 ? { min: Math.min(...retryAfters), max: Math.max(...retryAfters) } : null,
      send_seconds: round(sendSeconds, 2),
      failed_attempts_logged: probeWaits.length,
      longest_probe_wait_s: round(Math.max(0, ...probeWaits), 1),
      seconds_to_first_issue: seconds(drained.first?.at),
      seconds_to_all_issued: seconds(drained.all?.at),
      ...drainRate(drained),
      issued: drained.reached,
      timed_out: drained.all === undefined,
    };
  } finally {
    issued.close();
  }
}

/** A moment of the drain: when, how many issued, and the CPU time of the RA and of the upstream by then. */
interface DrainMark {
  readonly at: number;
  readonly issued: number;
  readonly raCpuMs: number;
  readonly upstreamCpuMs: number;
}

interface Drained {
  readonly first?: DrainMark;
  readonly all?: DrainMark;
  readonly reached: number;
}

/** Polls the RA's store until `expected` requests more than `before` are issued, or DRAIN_TIMEOUT_S after `since`. */
async function pollIssued(counter: { count(): number }, before: number, expected: number, since: number, raPid: number, upstreamPid: number): Promise<Drained> {
  let first: DrainMark | undefined;
  let reportedAt = since;
  let reached = 0;
  while (performance.now() - since < DRAIN_TIMEOUT_S * 1000) {
    reached = counter.count() - before;
    const mark = { at: performance.now(), issued: reached, raCpuMs: cpuMs(raPid), upstreamCpuMs: cpuMs(upstreamPid) };
    if (reached > 0) first ??= mark;
    if (reached >= expected) return { first, all: mark, reached };
    if (mark.at - reportedAt > 5_000) {
      progress(`queue drain: ${reached}/${expected} issued after ${round((mark.at - since) / 1000, 1)} s`);
      reportedAt = mark.at;
    }
    await sleep(DRAIN_POLL_MS);
  }
  return { first, reached };
}

/** Speed and CPU cost between the first and the last poll of a drain that finished. */
function drainRate(drained: Drained): Pick<QueueDrain, 'drain_per_s' | 'ra_cpu_ms_per_enrollment' | 'upstream_cpu_ms_per_enrollment'> {
  const { first, all } = drained;
  if (!first || !all) return { drain_per_s: null, ra_cpu_ms_per_enrollment: null, upstream_cpu_ms_per_enrollment: null };
  // At least one poll interval and one request: a drain that fits between two polls is not infinitely fast.
  const issued = Math.max(all.issued - first.issued, 1);
  return {
    drain_per_s: round((issued / Math.max(all.at - first.at, DRAIN_POLL_MS)) * 1000, 1),
    ra_cpu_ms_per_enrollment: round((all.raCpuMs - first.raCpuMs) / issued, 2),
    upstream_cpu_ms_per_enrollment: round((all.upstreamCpuMs - first.upstreamCpuMs) / issued, 2),
  };
}

/** Seconds from each 'request queued for the upstream' warning to the retry_at it announced. */
function queuedWarnings(log: string): number[] {
  return log
    .split('\n')
    .filter((line) => line.includes('"request queued for the upstream"'))
    .map((line) => JSON.parse(line) as { timestamp: string; retry_at: string })
    .map((entry) => (Date.parse(entry.retry_at) - Date.parse(entry.timestamp)) / 1000);
}

// ----------------------------------------------------- client certificate

type RevocationMode = 'hard_fail' | 'off';

interface MtlsResults {
  readonly section: RoundResult & { readonly concurrency: number; readonly revocation_mode: RevocationMode; readonly client_certificates: number };
  readonly modes: {
    readonly concurrency: number;
    readonly hard_fail: RoundResult;
    readonly off: RoundResult;
    /** What OCSP (cached until nextUpdate) and the checks around it cost est-ra per enrollment. */
    readonly added_cpu_ms_per_enrollment: number;
    readonly added_p50_ms: number;
    /** Requests the CRL server saw over both modes: OCSP answers first, so none is expected. */
    readonly crl_fetches: number;
  };
}

/**
 * The demo profile authenticates simpleenroll by client certificate only,
 * issued by `caFile`, with revocation checked as `mode` says (OCSP from the
 * certificate's AIA, then its CRL distribution point).
 */
function mtlsProfile(caFile: string, mode: RevocationMode): (stateDir: string) => Promise<void> {
  return async (stateDir) => {
    const configFile = join(stateDir, 'config.yaml');
    const config = parseYaml(readFileSync(configFile, 'utf8')) as {
      profiles: Record<string, Record<string, unknown>>;
      authentication_policies: Record<string, Record<string, unknown>>;
    };
    config.profiles['demo'] = { ...config.profiles['demo'], enroll_authentication: { methods: ['client_certificate'] } };
    config.authentication_policies['demo'] = {
      ...config.authentication_policies['demo'],
      authentication_cas: [caFile],
      revocation: { mode, ocsp: true, use_crl_distribution_points: true },
    };
    writeFileSync(configFile, stringifyYaml(config));
  };
}

/** Warm-up, then LEVEL_ROUNDS rounds at MTLS_CONCURRENCY: the median one. */
async function mtlsRounds(estRa: EstRa, target: Target, nextCsr: () => string, mode: RevocationMode): Promise<RoundResult> {
  await checkOneEnrollment(target, nextCsr());
  progress(`mTLS ${mode} warm-up: ${WARMUP_SECONDS} s at c${MTLS_CONCURRENCY}`);
  await runLevel(target, estRa.pid, nextCsr, MTLS_CONCURRENCY, WARMUP_SECONDS);
  const rounds: LevelResult[] = [];
  for (let round = 1; round <= LEVEL_ROUNDS; round++) {
    progress(`mTLS ${mode} c${MTLS_CONCURRENCY} round ${round}/${LEVEL_ROUNDS}: ${ROUND_SECONDS} s`);
    rounds.push(await runLevel(target, estRa.pid, nextCsr, MTLS_CONCURRENCY, ROUND_SECONDS));
    progress(`mTLS ${mode}: ${JSON.stringify(rounds.at(-1))}`);
  }
  return medianRound(rounds);
}

/**
 * Simpleenroll authenticated by one client certificate (no passcode) from
 * an openssl-ca CA whose certificates name a running OCSP responder and an
 * HTTP CRL: first with revocation hard_fail (est-ra caches the OCSP answer
 * until its nextUpdate, 5 minutes, so this is the warm cache), then est-ra
 * restarted with revocation off, so the difference is the checks' cost.
 */
async function benchMtls(root: string, nextCsr: () => string): Promise<MtlsResults> {
  const caDir = join(root, 'mtls-ca');
  const stateDir = join(root, 'mtls');
  mkdirSync(stateDir);
  let crlDer = Buffer.alloc(0);
  let crlFetches = 0;
  const crlServer = createHttpServer((_req, res) => {
    crlFetches++;
    res.writeHead(200, { 'Content-Type': 'application/pkix-crl', 'Content-Length': crlDer.length });
    res.end(crlDer);
  });
  await new Promise<void>((done) => crlServer.listen(0, '127.0.0.1', done));
  let ocsp: { stop(): Promise<void> } | undefined;
  let estRa: EstRa | undefined;
  try {
    const crlPort = (crlServer.address() as AddressInfo).port;
    const ocspPort = await freePort();
    progress(`mTLS: CA in ${caDir}, CRL on port ${crlPort}, OCSP on port ${ocspPort}`);
    const ca = await makeRevocationCa(caDir, { crlDistributionPoint: `http://127.0.0.1:${crlPort}/ca.crl`, ocspUrl: `http://127.0.0.1:${ocspPort}` });
    const client = await ca.issue('bench-mtls-device');
    crlDer = readFileSync((await ca.writeCrl()).derFile);
    ocsp = await ca.startOcspResponder({ port: ocspPort });

    progress(`starting est-ra in ${stateDir}, client_certificate, revocation hard_fail`);
    estRa = await startEstRa(stateDir, mtlsProfile(ca.caFile, 'hard_fail'));
    const target: Target = {
      port: estRa.port,
      agent: contextAgent(createSecureContext({ ca: estRa.rootCa, cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) })),
    };
    const hardFail = await mtlsRounds(estRa, target, nextCsr, 'hard_fail');

    progress('restarting est-ra with revocation off');
    await stopEstRa(estRa.child);
    await mtlsProfile(ca.caFile, 'off')(stateDir);
    estRa = await serveEstRa(stateDir, estRa.port, estRa.passcode);
    const off = await mtlsRounds(estRa, target, nextCsr, 'off');

    return {
      section: {
        concurrency: MTLS_CONCURRENCY,
        revocation_mode: 'hard_fail',
        // One bootstrap certificate for every request, as a downstream RA presents its own: its OCSP answer is
        // cached and its validated path remembered after the first; a device's first costs the breakdown's
        // path_validation_direct more.
        client_certificates: 1,
        ...hardFail,
      },
      modes: {
        concurrency: MTLS_CONCURRENCY,
        hard_fail: hardFail,
        off,
        added_cpu_ms_per_enrollment: round(hardFail.est_ra_cpu_ms_per_enrollment - off.est_ra_cpu_ms_per_enrollment, 2),
        added_p50_ms: round(hardFail.p50_ms - off.p50_ms, 1),
        crl_fetches: crlFetches,
      },
    };
  } finally {
    if (estRa) await stopEstRa(estRa.child);
    await ocsp?.stop();
    await new Promise<void>((done) => crlServer.close(() => done()));
    rmSync(caDir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------- serverkeygen

interface ServerKeygenResults {
  readonly concurrency: number;
  /** simpleenroll on the same est-ra at the same load, measured just before: the baseline the key generation adds to. */
  readonly simpleenroll: RoundResult;
  readonly p_256: RoundResult & { readonly added_cpu_ms_per_enrollment: number };
  readonly rsa_2048: RoundResult & { readonly added_cpu_ms_per_enrollment: number };
}

/** One server_side profile per measured key type, labelled by it, on the demo profile's CA and policy. */
async function serverKeygenProfiles(stateDir: string): Promise<void> {
  const configFile = join(stateDir, 'config.yaml');
  const config = parseYaml(readFileSync(configFile, 'utf8')) as { profiles: Record<string, Record<string, unknown>> };
  for (const keyType of SERVERKEYGEN_KEY_TYPES)
    config.profiles[keyType] = {
      ...config.profiles['demo'],
      default: false,
      labels: [keyType],
      key_generation_option: 'server_side',
      allowed_key_types: [keyType],
    };
  writeFileSync(configFile, stringifyYaml(config));
}

/** Warm-up, then LEVEL_ROUNDS rounds at SERVERKEYGEN_CONCURRENCY: the median one. */
async function serverKeygenRounds(estRa: EstRa, target: Target, nextCsr: () => string, name: string): Promise<RoundResult> {
  const first = await enroll(target, nextCsr());
  if (first.status !== 200) throw new Error(`${name} answered ${first.status}: ${first.body.toString('utf8').slice(0, 300)}`);
  progress(`${name} warm-up: ${WARMUP_SECONDS} s at c${SERVERKEYGEN_CONCURRENCY}`);
  await runLevel(target, estRa.pid, nextCsr, SERVERKEYGEN_CONCURRENCY, WARMUP_SECONDS);
  const rounds: LevelResult[] = [];
  for (let round = 1; round <= LEVEL_ROUNDS; round++) {
    progress(`${name} c${SERVERKEYGEN_CONCURRENCY} round ${round}/${LEVEL_ROUNDS}: ${ROUND_SECONDS} s`);
    rounds.push(await runLevel(target, estRa.pid, nextCsr, SERVERKEYGEN_CONCURRENCY, ROUND_SECONDS));
    progress(`${name}: ${JSON.stringify(rounds.at(-1))}`);
  }
  return medianRound(rounds);
}

/**
 * /serverkeygen at c8, a new full handshake per request as the levels: the
 * device sends a P-256 CSR (a template: RFC 7030 §4.4.1) and est-ra makes a
 * key of the profile's one type, issues it and answers the key and the
 * certificate. simpleenroll on the same est-ra at the same load comes first,
 * so what the key generation adds is measured on the same machine at the
 * same moment (the cores are shared: absolute figures swing).
 */
async function benchServerKeygen(root: string, nextCsr: () => string): Promise<ServerKeygenResults> {
  const stateDir = join(root, 'serverkeygen');
  mkdirSync(stateDir);
  progress(`starting est-ra in ${stateDir} with server_side profiles ${SERVERKEYGEN_KEY_TYPES.join(', ')}`);
  const estRa = await startEstRa(stateDir, serverKeygenProfiles);
  try {
    const simpleenroll = await serverKeygenRounds(estRa, targetOf(estRa), nextCsr, 'simpleenroll baseline');
    const measure = async (keyType: (typeof SERVERKEYGEN_KEY_TYPES)[number]) => {
      const result = await serverKeygenRounds(estRa, { ...targetOf(estRa), operation: 'serverkeygen', label: keyType }, nextCsr, `serverkeygen ${keyType}`);
      return { ...result, added_cpu_ms_per_enrollment: round(result.est_ra_cpu_ms_per_enrollment - simpleenroll.est_ra_cpu_ms_per_enrollment, 2) };
    };
    return { concurrency: SERVERKEYGEN_CONCURRENCY, simpleenroll, p_256: await measure('p_256'), rsa_2048: await measure('rsa_2048') };
  } finally {
    await stopEstRa(estRa.child);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------- main

interface Levels {
  readonly levels: Record<string, RoundResult>;
  readonly peakRssMb: number;
  readonly breakdown: Breakdown;
}

async function benchLevels(estRa: EstRa, keys: readonly DeviceKey[], nextCsr: () => string): Promise<Levels> {
  const target = targetOf(estRa);
  const rss = sampleRss(estRa.pid);

  await checkOneEnrollment(target, nextCsr());
  progress(`warm-up: ${WARMUP_SECONDS} s at c8`);
  await runLevel(target, estRa.pid, nextCsr, 8, WARMUP_SECONDS);

  const levels: Record<string, RoundResult> = {};
  for (const concurrency of LEVELS) {
    const rounds: LevelResult[] = [];
    for (let round = 1; round <= LEVEL_ROUNDS; round++) {
      progress(`c${concurrency} round ${round}/${LEVEL_ROUNDS}: ${ROUND_SECONDS} s`);
      const result = await runLevel(target, estRa.pid, nextCsr, concurrency, ROUND_SECONDS);
      progress(`c${concurrency}: ${JSON.stringify(result)}`);
      rounds.push(result);
    }
    levels[`c${concurrency}`] = medianRound(rounds);
  }
  const peakRssMb = round(rss.stop(), 1);

  progress(`breakdown: ${BREAKDOWN_ITERATIONS} iterations per operation`);
  const breakdown = await measureBreakdown(estRa, Uint8Array.from(signCsr(keys[0]!)).buffer);
  return { levels, peakRssMb, breakdown };
}

interface RaResults {
  readonly overhead: RaOverhead;
  readonly keepAlive: UpstreamKeepAlive;
  readonly drain: QueueDrain;
}

function report(
  measured: Levels | undefined,
  mtls: MtlsResults | undefined,
  hostile: HostileResults | undefined,
  ra: RaResults | undefined,
  serverKeygen: ServerKeygenResults | undefined,
  pqc?: Record<string, PqcCost>,
  cluster?: ClusterResults,
): Record<string, unknown> {
  const c32 = measured?.levels['c32'];
  const met: Record<string, boolean> = {};
  if (measured) {
    met.c32_enrollments_per_s = (c32?.enrollments_per_s ?? 0) >= TARGETS.c32_enrollments_per_s_min;
    met.c32_p99_ms = (c32?.p99_ms ?? Infinity) < TARGETS.p99_ms_max;
    met.peak_rss_mb = measured.peakRssMb < TARGETS.peak_rss_mb_max;
  }
  if (ra) {
    met.ra_added_p50_ms = ra.overhead.added_p50_ms <= TARGETS.ra_added_p50_ms_max;
    met.ra_added_p99_ms = ra.overhead.added_p99_ms <= TARGETS.ra_added_p99_ms_max;
    met.ra_upstream_connections = ra.keepAlive.max_connections_seen <= TARGETS.ra_upstream_connections_max;
    met.forward_to_local_cpu_ratio = ra.overhead.forward_to_local_cpu_ratio <= TARGETS.forward_to_local_cpu_ratio_max;
    met.queue_drain_per_s = (ra.drain.drain_per_s ?? 0) >= TARGETS.queue_drain_per_s_min;
  }
  if (mtls) met.mtls_c32_enrollments_per_s = mtls.section.enrollments_per_s >= TARGETS.mtls_c32_enrollments_per_s_min;
  if (hostile) Object.assign(met, hostileTargetsMet(hostile));
  return {
    simpleenroll_full_handshake: measured?.levels,
    mtls_simpleenroll: mtls?.section,
    revocation_modes: mtls?.modes,
    simpleenroll_c256_plant: hostile?.c256,
    hostile_address: hostile?.hostile,
    est_ra_peak_rss_mb: measured?.peakRssMb,
    breakdown: measured?.breakdown,
    ra_overhead: ra?.overhead,
    upstream_keep_alive: ra?.keepAlive,
    queue_drain: ra?.drain,
    serverkeygen: serverKeygen,
    pqc_csr_verification: pqc,
    cluster,
    targets: TARGETS,
    targets_met: met,
    node: process.version,
    cores: availableParallelism(),
  };
}

/**
 * The embedded default is measured first on its own; it then serves as the
 * upstream of a second est-ra, the RA, which comes up only now so that it
 * takes no CPU from the levels.
 */
async function bench(root: string): Promise<Record<string, unknown>> {
  const pqc = SECTIONS.has('pqc') ? await benchPqc() : undefined;
  if ([...SECTIONS].every((section) => section === 'pqc')) return report(undefined, undefined, undefined, undefined, undefined, pqc);
  progress(`making ${DEVICE_KEYS} P-256 device keys`);
  const keys = makeDeviceKeys(DEVICE_KEYS);
  const nextCsr = csrCycle(keys);

  const upstreamDir = join(root, 'upstream');
  mkdirSync(upstreamDir);
  progress(`starting est-ra in ${upstreamDir}`);
  const upstream = await startEstRa(upstreamDir);
  const measured = SECTIONS.has('levels') ? await benchLevels(upstream, keys, nextCsr) : undefined;
  const mtls = SECTIONS.has('mtls') ? await benchMtls(root, nextCsr) : undefined;
  const hostile = SECTIONS.has('hostile') ? await benchHostile(root, nextCsr) : undefined;
  const serverKeygen = SECTIONS.has('serverkeygen') ? await benchServerKeygen(root, nextCsr) : undefined;
  const cluster = SECTIONS.has('cluster') ? await benchCluster(root, nextCsr) : undefined;
  if (!SECTIONS.has('ra')) return report(measured, mtls, hostile, undefined, serverKeygen, pqc, cluster);

  const raDir = join(root, 'ra');
  mkdirSync(raDir);
  progress(`starting the RA in ${raDir}, upstream: est towards port ${upstream.port}`);
  const ra = await startEstRa(raDir, raProfile(upstream));
  const { overhead, keepAlive } = await measureRaOverhead(ra, upstream, nextCsr);
  const drain = await measureQueueDrain(ra, upstream, nextCsr);
  progress(`est-ra wrote ${countLines(upstream.logFile)} log lines as the upstream, ${countLines(ra.logFile)} as the RA`);
  return report(measured, mtls, hostile, { overhead, keepAlive, drain }, serverKeygen, pqc, cluster);
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'est-ra-bench-'));
  const cleanUp = async (): Promise<void> => {
    await Promise.all([...running].map(stopEstRa));
    await Promise.all([...cleanUps].map((stop) => stop()));
    rmSync(root, { recursive: true, force: true });
  };
  // Ctrl-C (or a kill) must not leave a server running or a state directory behind.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => void cleanUp().finally(() => process.exit(code)));
  }
  try {
    process.stdout.write(`${JSON.stringify(await bench(root), null, 2)}\n`);
  } finally {
    await cleanUp();
  }
}

function countLines(file: string): number {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '').length;
}

function countMatching(text: string, needle: string): number {
  return text.split('\n').filter((line) => line.includes(needle)).length;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
