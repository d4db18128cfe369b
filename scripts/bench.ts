/**
 * Enrollment benchmark: runs est-ra on the embedded default (`init` + `serve`)
 * as a child process and drives /simpleenroll at concurrency 1, 8 and 32 with
 * a new full TLS handshake per request, then measures what one enrollment is
 * made of. A fresh est-ra then authenticates simpleenroll by client
 * certificate (one device certificate of an openssl-ca CA, revocation
 * hard_fail over a live OCSP responder, then off) at c32. Then a second est-ra, the RA, forwards to the first one
 * (`upstream: est`): what the RA hop adds at c32, how few upstream
 * connections its keep-alive needs, and how fast its queue drains after an
 * upstream outage. Prints one JSON object on stdout; progress goes to stderr.
 *
 * Linux only: the children's RSS and CPU time are read from /proc, the RA's
 * upstream connections from ss (iproute2).
 *
 *   npm run bench
 *   BENCH_SECTIONS=mtls npm run bench      # only some of: levels, mtls, ra
 */
// @peculiar/x509's decorators need reflect-metadata loaded before the library.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import Database from 'better-sqlite3';
import { generateKeyPairSync, randomBytes, scryptSync, sign, webcrypto, type KeyObject } from 'node:crypto';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { Agent, request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as pkijs from 'pkijs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { buildCertsOnly, parseCertsOnly } from '../src/pki/certs-only.js';
import { parseAndVerifyCsr } from '../src/pki/csr.js';
import { privateKeyToPem } from '../src/pki/certificate-builder.js';
import { bitString, contextTag, objectIdentifier, sequence, smallInteger } from '../src/pki/der.js';
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

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const CLI = resolve(fileURLToPath(import.meta.url), '../../src/cli/main.js');
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'levels,mtls,ra').split(','));
const LEVELS = (process.env.BENCH_LEVELS ?? '1,8,32').split(',').map(Number);
/** Each level runs several rounds and reports the median one: this VM's neighbours make single runs swing by ±25 %. */
const LEVEL_ROUNDS = 3;
const ROUND_SECONDS = 5;
const WARMUP_SECONDS = 2;
const DEVICE_KEYS = 200;
const BREAKDOWN_ITERATIONS = 500;
const RSS_SAMPLE_MS = 100;
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
  mtls_c32_enrollments_per_s_min: 350,
} as const;
/** The client-certificate section's load, as the c32 level. */
const MTLS_CONCURRENCY = 32;

/** The demo profile's issuance settings, for the breakdown's own local CA. */
const BENCH_POLICY: IssuancePolicy = {
  validityMs: 365 * 86_400_000,
  keyUsage: { rsa: ['digital_signature', 'key_encipherment'], ecdsa: ['digital_signature', 'key_agreement'], eddsa: ['digital_signature'] },
  extendedKeyUsage: ['client_authentication'],
  signatureAlgorithm: 'match_issuer',
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
  readonly stateDir: string;
  readonly logFile: string;
}

/** Every est-ra serve still running, so that every way out of the bench (end, error, Ctrl-C) stops them all. */
const running = new Set<ChildProcess>();

/** A port that was free a moment ago: `init` writes it into config.yaml. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function initStateDir(stateDir: string, port: number): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    CLI,
    'init',
    '--state-dir',
    stateDir,
    '--port',
    String(port),
    '--demo-passcode',
    '--policy-name',
    'demo',
    '--profile-name',
    'demo',
  ]);
  const passcode = /Demo passcode \(shown once, stored only as a hash\): (\S+)/.exec(stdout)?.[1];
  if (!passcode) throw new Error(`est-ra init printed no demo passcode:\n${stdout}`);
  return passcode;
}

/** `init` on a free port, then `configure` may change config.yaml before est-ra serves it. */
async function startEstRa(stateDir: string, configure?: (stateDir: string) => Promise<void>): Promise<EstRa> {
  const port = await freePort();
  const passcode = await initStateDir(stateDir, port);
  await configure?.(stateDir);
  return serveEstRa(stateDir, port, passcode);
}

/**
 * Serves config.yaml with init's log settings (level info, JSON lines
 * because stdout is not a TTY), so every request is logged as in production.
 * Stdout goes to a file rather than a pipe, so a slow reader can never block
 * it; a restart appends to the same file.
 */
async function serveEstRa(stateDir: string, port: number, passcode: string): Promise<EstRa> {
  const logFile = join(stateDir, 'serve.log');
  const logFd = openSync(logFile, 'a');
  const logStart = statSync(logFile).size;
  // BENCH_CPU_PROFILE_DIR=<dir> writes a V8 CPU profile of est-ra (open it in Chrome DevTools).
  const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
  // Otherwise est-ra runs as systemd runs it: the est-ra command itself, through its shebang.
  const [command, args] = profileDir ? [process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, CLI]] : [CLI, []];
  const child = spawn(command, [...args, 'serve', '--config', join(stateDir, 'config.yaml')], { stdio: ['ignore', logFd, 'inherit'] });
  closeSync(logFd);
  if (child.pid === undefined) throw new Error('could not start est-ra serve');
  running.add(child);
  child.once('exit', () => running.delete(child));
  const estRa = { child, pid: child.pid, port, passcode, rootCa: readFileSync(join(stateDir, 'pki', 'root-ca.crt')), stateDir, logFile };
  await waitForListening(estRa, logStart);
  return estRa;
}

/** Waits for a 'listening' line written after `logStart`, i.e. by this process and not by an earlier one. */
async function waitForListening(estRa: EstRa, logStart: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!readFileSync(estRa.logFile).subarray(logStart).includes('listening')) {
    if (estRa.child.exitCode !== null) throw new Error(`est-ra serve exited with code ${estRa.child.exitCode} before listening`);
    if (Date.now() > deadline) throw new Error(`est-ra serve did not log 'listening' within ${timeoutMs} ms`);
    await sleep(20);
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

// ------------------------------------------------------------------ RA setup

/** A throwaway RA identity: the upstream est-ra authenticates simpleenroll by passcode and ignores the client certificate. */
async function makeRaIdentity(dir: string): Promise<{ certificate: string; key: string }> {
  const certificate = join(dir, 'ra.crt');
  const key = join(dir, 'ra.key');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=bench-ra', '-days', '1'];
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

// --------------------------------------------------------------------- CSRs

async function p256Keys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
}

/** A device's key and its CertificationRequestInfo (RFC 2986), signed anew for every request. */
interface DeviceKey {
  readonly info: Buffer;
  readonly privateKey: KeyObject;
}

const ECDSA_WITH_SHA256 = sequence(objectIdentifier('1.2.840.10045.4.3.2'));

function makeDeviceKey(index: number): DeviceKey {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const subject = Buffer.from(new x509.Name(`CN=bench-device-${index}, O=est-ra bench`).toArrayBuffer());
  const info = sequence(smallInteger(0), subject, publicKey.export({ type: 'spki', format: 'der' }), contextTag(0));
  return { info, privateKey };
}

/**
 * A CSR no est-ra has seen: ECDSA signatures are randomised, so signing the
 * same request info again gives new bytes. est-ra answers a CSR it already
 * issued from its store ("issued earlier") without signing or forwarding
 * anything, so a repeated CSR would measure that shortcut instead of an
 * enrollment. Costs the driver ~0.04 ms of CPU, where a new key and CSR from
 * @peculiar/x509 cost it ~2 ms.
 */
function signCsr(key: DeviceKey): Buffer {
  return sequence(key.info, ECDSA_WITH_SHA256, bitString(sign('sha256', key.info, key.privateKey)));
}

/** Keys made before the timed part, so the driver spends no CPU on key generation. */
function makeDeviceKeys(count: number): DeviceKey[] {
  return Array.from({ length: count }, (_, i) => makeDeviceKey(i));
}

// --------------------------------------------------------------- load driver

interface Target {
  readonly port: number;

  /** Absent: no Authorization header (client-certificate authentication). */
  readonly authorization?: string;
  /** No keep-alive and no session cache: every request is a new, full TLS handshake. */
  readonly agent: Agent;
}

/**
 * An agent whose connections share one TLS context (trust anchor, and the
 * client certificate where there is one), made once: the driver then spends
 * its CPU on handshakes, as a device does, not on building a context per
 * connection, which Node does when given ca/cert/key instead (measured:
 * 0.3 ms with a CA, 0.95 ms with a CA, certificate and key, on the cores
 * est-ra shares). Every connection is still a new, full handshake.
 */
function contextAgent(secureContext: SecureContext): Agent {
  return new Agent({ keepAlive: false, maxCachedSessions: 0, secureContext });
}

/** Simpleenroll at this est-ra with its demo passcode, trusting its root CA. */
function targetOf(estRa: EstRa): Target {
  return {
    port: estRa.port,
    authorization: `Basic ${Buffer.from(`:${estRa.passcode}`).toString('base64')}`,
    agent: contextAgent(createSecureContext({ ca: estRa.rootCa })),
  };
}

interface Outcome {
  readonly status: number;
  readonly ms: number;
  readonly resumed: boolean;
  readonly body: Buffer;
  readonly retryAfter?: string;
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
        headers: {
          'Content-Type': 'application/pkcs10',
          'Content-Length': Buffer.byteLength(csrBase64),
          ...(target.authorization !== undefined ? { Authorization: target.authorization } : {}),
          Connection: 'close',
        },
      },
      (res) => {
        const resumed = (res.socket as TLSSocket).isSessionReused();
        const retryAfter = res.headers['retry-after'];
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => done({ status: res.statusCode ?? 0, ms: performance.now() - started, resumed, body: Buffer.concat(chunks), retryAfter }));
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

/** A level's median round, with every round's throughput beside it. */
type RoundResult = LevelResult & { rounds_enrollments_per_s: number[] };

/** Round-robin over the device keys, shared by all workers of a run; every call is a CSR never sent before. */
function csrCycle(keys: readonly DeviceKey[]): () => string {
  let next = 0;
  return () => signCsr(keys[next++ % keys.length]!).toString('base64');
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

/** `concurrency` workers sending `total` requests between them, each as soon as its previous one is answered. */
async function runCount(target: Target, nextCsr: () => string, concurrency: number, total: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < total) {
      sent++;
      outcomes.push(await enroll(target, nextCsr()));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcomes;
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

/** The round with the median throughput, whole (its latencies belong to it), and every round's throughput. */
function medianRound<T extends LevelResult>(rounds: readonly T[]): T & { rounds_enrollments_per_s: number[] } {
  const median = [...rounds].sort((a, b) => a.enrollments_per_s - b.enrollments_per_s)[Math.floor(rounds.length / 2)]!;
  return { ...median, rounds_enrollments_per_s: rounds.map((r) => r.enrollments_per_s) };
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

function report(measured: Levels | undefined, mtls: MtlsResults | undefined, ra: RaResults | undefined): Record<string, unknown> {
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
    met.queue_drain_per_s = (ra.drain.drain_per_s ?? 0) >= TARGETS.queue_drain_per_s_min;
  }
  if (mtls) met.mtls_c32_enrollments_per_s = mtls.section.enrollments_per_s >= TARGETS.mtls_c32_enrollments_per_s_min;
  return {
    simpleenroll_full_handshake: measured?.levels,
    mtls_simpleenroll: mtls?.section,
    revocation_modes: mtls?.modes,
    est_ra_peak_rss_mb: measured?.peakRssMb,
    breakdown: measured?.breakdown,
    ra_overhead: ra?.overhead,
    upstream_keep_alive: ra?.keepAlive,
    queue_drain: ra?.drain,
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
  progress(`making ${DEVICE_KEYS} P-256 device keys`);
  const keys = makeDeviceKeys(DEVICE_KEYS);
  const nextCsr = csrCycle(keys);

  const upstreamDir = join(root, 'upstream');
  mkdirSync(upstreamDir);
  progress(`starting est-ra in ${upstreamDir}`);
  const upstream = await startEstRa(upstreamDir);
  const measured = SECTIONS.has('levels') ? await benchLevels(upstream, keys, nextCsr) : undefined;
  const mtls = SECTIONS.has('mtls') ? await benchMtls(root, nextCsr) : undefined;
  if (!SECTIONS.has('ra')) return report(measured, mtls, undefined);

  const raDir = join(root, 'ra');
  mkdirSync(raDir);
  progress(`starting the RA in ${raDir}, upstream: est towards port ${upstream.port}`);
  const ra = await startEstRa(raDir, raProfile(upstream));
  const { overhead, keepAlive } = await measureRaOverhead(ra, upstream, nextCsr);
  const drain = await measureQueueDrain(ra, upstream, nextCsr);
  progress(`est-ra wrote ${countLines(upstream.logFile)} log lines as the upstream, ${countLines(ra.logFile)} as the RA`);
  return report(measured, mtls, { overhead, keepAlive, drain });
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'est-ra-bench-'));
  const cleanUp = async (): Promise<void> => {
    await Promise.all([...running].map(stopEstRa));
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

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
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
