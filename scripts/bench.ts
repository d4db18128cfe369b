/**
 * Enrollment benchmark: runs est-ra on the embedded default (`init` + `serve`)
 * as a child process and drives /simpleenroll at concurrency 1, 8 and 32 with
 * a new full TLS handshake per request, then measures what one enrollment is
 * made of. Prints one JSON object on stdout; progress goes to stderr.
 *
 * Linux only: the child's RSS and CPU time are read from /proc.
 *
 *   npm run bench
 */
// @peculiar/x509's decorators need reflect-metadata loaded before the library.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, scryptSync, webcrypto } from 'node:crypto';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as pkijs from 'pkijs';
import { buildCertsOnly, parseCertsOnly } from '../src/pki/certs-only.js';
import { parseAndVerifyCsr } from '../src/pki/csr.js';
import { privateKeyToPem } from '../src/pki/certificate-builder.js';
import { bytes } from '../src/pki/x509.js';
import { newSerialNumber } from '../src/pki/serial.js';
import { hashPasscode } from '../src/auth/passcode.js';
import { LocalCaUpstream, type IssuancePolicy } from '../src/upstream/local-ca.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const CLI = resolve(fileURLToPath(import.meta.url), '../../src/cli/main.js');
const LEVELS = (process.env.BENCH_LEVELS ?? '1,8,32').split(',').map(Number);
/** Each level runs several rounds and reports the median one: this VM's neighbours make single runs swing by ±25 %. */
const LEVEL_ROUNDS = 3;
const ROUND_SECONDS = 5;
const WARMUP_SECONDS = 2;
const CSR_POOL_SIZE = 200;
const BREAKDOWN_ITERATIONS = 500;
const RSS_SAMPLE_MS = 100;
const TARGETS = { c32_enrollments_per_s_min: 300, p99_ms_max: 150, peak_rss_mb_max: 150 } as const;

/** The demo profile's issuance settings, for the breakdown's own local CA. */
const BENCH_POLICY: IssuancePolicy = {
  validityMs: 365 * 86_400_000,
  keyUsage: { rsa: ['digital_signature', 'key_encipherment'], ecdsa: ['digital_signature', 'key_agreement'], eddsa: ['digital_signature'] },
  extendedKeyUsage: ['client_authentication'],
};

const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA_SHA256: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

const progress = (text: string): void => void process.stderr.write(`bench: ${text}\n`);

// ---------------------------------------------------------------- est-ra child

interface EstRa {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly passcode: string;
  readonly rootCa: Buffer;
  readonly logFile: string;
}

/** A port that was free a moment ago: `init` writes it into config.yaml. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function initStateDir(stateDir: string, port: number): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'init', '--state-dir', stateDir, '--port', String(port)]);
  const passcode = /Demo passcode \(shown once, stored only as a hash\): (\S+)/.exec(stdout)?.[1];
  if (!passcode) throw new Error(`est-ra init printed no demo passcode:\n${stdout}`);
  return passcode;
}

/**
 * Serves with the config exactly as init wrote it (log level info, JSON lines
 * because stdout is not a TTY), so every request is logged as in production.
 * Stdout goes to a file rather than a pipe, so a slow reader can never block it.
 */
async function startEstRa(stateDir: string): Promise<EstRa> {
  const port = await freePort();
  const passcode = await initStateDir(stateDir, port);
  const logFile = join(stateDir, 'serve.log');
  const logFd = openSync(logFile, 'a');
  // BENCH_CPU_PROFILE_DIR=<dir> writes a V8 CPU profile of est-ra (open it in Chrome DevTools).
  const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
  // Otherwise est-ra runs as systemd runs it: the est-ra command itself, through its shebang.
  const [command, args] = profileDir ? [process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, CLI]] : [CLI, []];
  const child = spawn(command, [...args, 'serve', '--config', join(stateDir, 'config.yaml')], { stdio: ['ignore', logFd, 'inherit'] });
  closeSync(logFd);
  if (child.pid === undefined) throw new Error('could not start est-ra serve');
  const estRa = { child, pid: child.pid, port, passcode, rootCa: readFileSync(join(stateDir, 'pki', 'root-ca.crt')), logFile };
  await waitForListening(estRa);
  return estRa;
}

async function waitForListening(estRa: EstRa, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!readFileSync(estRa.logFile, 'utf8').includes('listening')) {
    if (estRa.child.exitCode !== null) throw new Error(`est-ra serve exited with code ${estRa.child.exitCode} before listening`);
    if (Date.now() > deadline) throw new Error(`est-ra serve did not log 'listening' within ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function stopEstRa(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(killTimer);
}

// ------------------------------------------------------- child RSS and CPU time

const CLOCK_TICKS_PER_S = clockTicksPerSecond();

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return kb === undefined ? 0 : Number(kb) / 1024;
}

/** User + system CPU time of a process in ms (/proc/<pid>/stat fields 14 and 15). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** Samples the child's RSS in the background; `stop` returns the peak in MB. */
function sampleRss(pid: number): { stop(): number } {
  let peak = rssMb(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssMb(pid));
    } catch {
      // The child is gone; the load driver reports the failures.
    }
  }, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

// --------------------------------------------------------------------- CSRs

async function p256Keys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
}

async function makeCsr(index: number): Promise<ArrayBuffer> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=bench-device-${index}, O=est-ra bench`,
    keys: await p256Keys(),
    signingAlgorithm: ECDSA_SHA256,
  });
  return csr.rawData;
}

/** Distinct CSRs made before the timed part, so the driver spends no CPU on keys. */
async function makeCsrPool(size: number): Promise<ArrayBuffer[]> {
  return Promise.all(Array.from({ length: size }, (_, i) => makeCsr(i)));
}

// --------------------------------------------------------------- load driver

interface Target {
  readonly port: number;
  readonly ca: Buffer;
  readonly authorization: string;
  /** No keep-alive and no session cache: every request is a new, full TLS handshake. */
  readonly agent: Agent;
}

interface Outcome {
  readonly status: number;
  readonly ms: number;
  readonly resumed: boolean;
  readonly body: Buffer;
}

function enroll(target: Target, csrBase64: string): Promise<Outcome> {
  const started = performance.now();
  return new Promise((done) => {
    const failed = (): void => done({ status: 0, ms: performance.now() - started, resumed: false, body: Buffer.alloc(0) });
    const req = request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: '/.well-known/est/simpleenroll',
        method: 'POST',
        agent: target.agent,
        ca: target.ca,
        headers: {
          'Content-Type': 'application/pkcs10',
          'Content-Length': Buffer.byteLength(csrBase64),
          Authorization: target.authorization,
          Connection: 'close',
        },
      },
      (res) => {
        const resumed = (res.socket as TLSSocket).isSessionReused();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => done({ status: res.statusCode ?? 0, ms: performance.now() - started, resumed, body: Buffer.concat(chunks) }));
        res.on('error', failed);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', failed);
    req.end(csrBase64);
  });
}

interface LevelResult {
  readonly enrollments_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly errors: number;
  readonly requests: number;
  readonly resumed_sessions: number;
  /** est-ra's own CPU time per enrollment: compare with the breakdown. */
  readonly est_ra_cpu_ms_per_enrollment: number;
  /** The load driver shares the cores with est-ra; this is what it took from them. */
  readonly driver_cpu_ms_per_enrollment: number;
  /** RSS when the level ends: rising from level to level would mean growth, not a steady state. */
  readonly est_ra_rss_mb_at_end: number;
}

/** Round-robin over the CSR pool, shared by all workers of a run. */
function csrCycle(csrs: readonly string[]): () => string {
  let next = 0;
  return () => csrs[next++ % csrs.length]!;
}

/** `concurrency` workers, each sending one request after the other until the deadline. */
async function runLevel(target: Target, pid: number, nextCsr: () => string, concurrency: number, seconds: number): Promise<LevelResult> {
  const outcomes: Outcome[] = [];
  const deadline = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) outcomes.push(await enroll(target, nextCsr()));
  };
  const estRaCpuBefore = cpuMs(pid);
  const driverCpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - started) / 1000;
  const driverCpu = process.cpuUsage(driverCpuBefore);
  const result = summarize(outcomes, elapsedS, cpuMs(pid) - estRaCpuBefore, (driverCpu.user + driverCpu.system) / 1000);
  return { ...result, est_ra_rss_mb_at_end: round(rssMb(pid), 1) };
}

function summarize(outcomes: readonly Outcome[], elapsedS: number, estRaCpuMs: number, driverCpuMs: number): Omit<LevelResult, 'est_ra_rss_mb_at_end'> {
  const ok = outcomes.filter((o) => o.status === 200).length;
  const latencies = outcomes.map((o) => o.ms).sort((a, b) => a - b);
  const perEnrollment = (ms: number): number => round(ms / Math.max(ok, 1), 2);
  return {
    enrollments_per_s: round(ok / elapsedS, 1),
    p50_ms: round(percentile(latencies, 0.5), 1),
    p99_ms: round(percentile(latencies, 0.99), 1),
    errors: outcomes.length - ok,
    requests: outcomes.length,
    resumed_sessions: outcomes.filter((o) => o.resumed).length,
    est_ra_cpu_ms_per_enrollment: perEnrollment(estRaCpuMs),
    driver_cpu_ms_per_enrollment: perEnrollment(driverCpuMs),
  };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/** One real enrollment before timing: fails fast if est-ra refuses or answers something that is not a certificate. */
async function checkOneEnrollment(target: Target, csr: string): Promise<void> {
  const outcome = await enroll(target, csr);
  if (outcome.status !== 200) throw new Error(`simpleenroll answered ${outcome.status}: ${outcome.body.toString('utf8').slice(0, 300)}`);
  const certificates = parseCertsOnly(Buffer.from(outcome.body.toString('latin1'), 'base64'));
  if (certificates.length !== 1) throw new Error(`simpleenroll answered ${certificates.length} certificates, expected 1`);
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
  const issuedDer = (await upstream.simpleEnroll(verified)).der;
  const librarySign = await librarySignOp(csr, issuer);
  const handshake = (): Promise<void> => tlsHandshake(estRa.port, estRa.rootCa);
  const salt = randomBytes(16);

  const estRaSteps = {
    csr_parse_and_verify_p256: await measure(() => parseAndVerifyCsr(der)),
    certificate_sign_p256: await measure(() => upstream.simpleEnroll(verified)),
    certs_only_pkcs7_build: await measure(() => buildCertsOnly([issuedDer])),
    passcode_sha256: await measure(() => hashPasscode(estRa.passcode)),
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

// ---------------------------------------------------------------------- main

async function bench(estRa: EstRa): Promise<Record<string, unknown>> {
  progress(`making ${CSR_POOL_SIZE} P-256 CSRs`);
  const csrs = await makeCsrPool(CSR_POOL_SIZE);
  const target: Target = {
    port: estRa.port,
    ca: estRa.rootCa,
    authorization: `Basic ${Buffer.from(`:${estRa.passcode}`).toString('base64')}`,
    agent: new Agent({ keepAlive: false, maxCachedSessions: 0 }),
  };
  const nextCsr = csrCycle(csrs.map((der) => Buffer.from(der).toString('base64')));
  const rss = sampleRss(estRa.pid);

  await checkOneEnrollment(target, nextCsr());
  progress(`warm-up: ${WARMUP_SECONDS} s at c8`);
  await runLevel(target, estRa.pid, nextCsr, 8, WARMUP_SECONDS);

  const levels: Record<string, LevelResult & { rounds_enrollments_per_s: number[] }> = {};
  for (const concurrency of LEVELS) {
    const rounds: LevelResult[] = [];
    for (let round = 1; round <= LEVEL_ROUNDS; round++) {
      progress(`c${concurrency} round ${round}/${LEVEL_ROUNDS}: ${ROUND_SECONDS} s`);
      const result = await runLevel(target, estRa.pid, nextCsr, concurrency, ROUND_SECONDS);
      progress(`c${concurrency}: ${JSON.stringify(result)}`);
      rounds.push(result);
    }
    const median = [...rounds].sort((a, b) => a.enrollments_per_s - b.enrollments_per_s)[Math.floor(rounds.length / 2)]!;
    levels[`c${concurrency}`] = { ...median, rounds_enrollments_per_s: rounds.map((r) => r.enrollments_per_s) };
  }
  const peakRssMb = round(rss.stop(), 1);

  progress(`breakdown: ${BREAKDOWN_ITERATIONS} iterations per operation`);
  const breakdown = await measureBreakdown(estRa, csrs[0]!);
  return report(levels, peakRssMb, breakdown);
}

function report(levels: Record<string, LevelResult>, peakRssMb: number, breakdown: Breakdown): Record<string, unknown> {
  const c32 = levels['c32'];
  return {
    simpleenroll_full_handshake: levels,
    est_ra_peak_rss_mb: peakRssMb,
    breakdown,
    targets: TARGETS,
    targets_met: {
      c32_enrollments_per_s: (c32?.enrollments_per_s ?? 0) >= TARGETS.c32_enrollments_per_s_min,
      c32_p99_ms: (c32?.p99_ms ?? Infinity) < TARGETS.p99_ms_max,
      peak_rss_mb: peakRssMb < TARGETS.peak_rss_mb_max,
    },
    node: process.version,
    cores: availableParallelism(),
  };
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'est-ra-bench-'));
  let child: ChildProcess | undefined;
  const cleanUp = async (): Promise<void> => {
    if (child) await stopEstRa(child);
    rmSync(stateDir, { recursive: true, force: true });
  };
  // Ctrl-C must not leave a server running or a state directory behind.
  process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)));
  try {
    progress(`starting est-ra in ${stateDir}`);
    const estRa = await startEstRa(stateDir);
    child = estRa.child;
    const result = await bench(estRa);
    progress(`est-ra wrote ${countLines(estRa.logFile)} log lines`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await cleanUp();
  }
}

function countLines(file: string): number {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '').length;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
