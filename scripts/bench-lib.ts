/**
 * What the bench's sections share: est-ra as a child process (`init` +
 * `serve`), its RSS and CPU time from /proc, device keys and fresh CSRs, and
 * the load driver (a new full TLS handshake per request).
 */
// @peculiar/x509's decorators need reflect-metadata loaded before the library.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseCertsOnly } from '../src/pki/certs-only.js';
import { bitString, contextTag, objectIdentifier, sequence, smallInteger } from '../src/pki/der.js';

export const CLI = resolve(fileURLToPath(import.meta.url), '../../src/cli/main.js');
const RSS_SAMPLE_MS = 100;

export const progress = (text: string): void => void process.stderr.write(`bench: ${text}\n`);

// ---------------------------------------------------------------- est-ra child

export interface EstRa {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly passcode: string;
  readonly rootCa: Buffer;
  readonly stateDir: string;
  readonly logFile: string;
}

/** Every est-ra serve still running, so that every way out of the bench (end, error, Ctrl-C) stops them all. */
export const running = new Set<ChildProcess>();

/** What else a section started (a PostgreSQL server): stopped on every way out of the bench too, after the children. */
export const cleanUps = new Set<() => Promise<void>>();

/** A port that was free a moment ago: `init` writes it into config.yaml. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function initStateDir(stateDir: string, port: number): Promise<string> {
  // The demo's names and passcode, as the bench's profiles and load expect them.
  const demo = ['--demo-passcode', '--policy-name', 'demo', '--profile-name', 'demo'];
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'init', '--state-dir', stateDir, '--port', String(port), ...demo]);
  const passcode = /Demo passcode \(shown once, stored only as a hash\): (\S+)/.exec(stdout)?.[1];
  if (!passcode) throw new Error(`est-ra init printed no demo passcode:\n${stdout}`);
  return passcode;
}

/** `init` on a free port, then `configure` may change config.yaml before est-ra serves it. */
export async function startEstRa(stateDir: string, configure?: (stateDir: string) => Promise<void>): Promise<EstRa> {
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
export async function serveEstRa(stateDir: string, port: number, passcode: string): Promise<EstRa> {
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

export async function stopEstRa(child: ChildProcess): Promise<void> {
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

export function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return kb === undefined ? 0 : Number(kb) / 1024;
}

/** /proc/<pid>/stat from field 3 (state) on: the command name before it is in parentheses and may contain spaces. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU time of a process in ms (/proc/<pid>/stat fields 14 and 15). */
export function cpuMs(pid: number): number {
  const fields = statFields(pid);
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/**
 * CPU time in ms of a server that forks a process per connection
 * (PostgreSQL's postmaster): its own, that of the children it has reaped
 * (cutime + cstime, fields 16 and 17: a backend whose connection closed) and
 * that of its live children (every process whose parent, field 4, it is).
 */
export function processTreeCpuMs(pid: number): number {
  const own = statFields(pid);
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(Number(entry));
      if (Number(fields[1]) === pid) ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Gone between the listing and the read: its time is in the parent's cutime now.
    }
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_S;
}

/**
 * CPU time in ms every process of the machine has used (/proc/stat's cpu
 * line: all but idle and iowait): against the bench's own processes, what
 * the neighbours on shared cores took.
 */
export function machineCpuMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = fields.reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!;
  return (busy * 1000) / CLOCK_TICKS_PER_S;
}

/** Samples the child's RSS in the background; `stop` returns the peak in MB. */
export function sampleRss(pid: number): { stop(): number } {
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

/** A device's key and its CertificationRequestInfo (RFC 2986), signed anew for every request. */
export interface DeviceKey {
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
export function signCsr(key: DeviceKey): Buffer {
  return sequence(key.info, ECDSA_WITH_SHA256, bitString(sign('sha256', key.info, key.privateKey)));
}

/** Keys made before the timed part, so the driver spends no CPU on key generation. */
export function makeDeviceKeys(count: number): DeviceKey[] {
  return Array.from({ length: count }, (_, i) => makeDeviceKey(i));
}

// --------------------------------------------------------------- load driver

export interface Target {
  readonly port: number;
  /** The operation posted to; simpleenroll when absent. */
  readonly operation?: 'simpleenroll' | 'serverkeygen';
  /** A label path before the operation (`line-1` → /.well-known/est/line-1/<operation>); the default profile when absent. */
  readonly label?: string;

  /** Absent: no Authorization header (client-certificate authentication). */
  readonly authorization?: string;
  /** No keep-alive and no session cache: every request is a new, full TLS handshake. */
  readonly agent: Agent;
  /**
   * Source addresses (127.0.0.x) the workers connect from, worker i from the
   * (i mod n)th: many devices of a plant, not one address. Absent: the kernel's
   * choice, 127.0.0.1.
   */
  readonly localAddresses?: readonly string[];
}

/**
 * An agent whose connections share one TLS context (trust anchor, and the
 * client certificate where there is one), made once: the driver then spends
 * its CPU on handshakes, as a device does, not on building a context per
 * connection, which Node does when given ca/cert/key instead (measured:
 * 0.3 ms with a CA, 0.95 ms with a CA, certificate and key, on the cores
 * est-ra shares). Every connection is still a new, full handshake.
 */
export function contextAgent(secureContext: SecureContext): Agent {
  return new Agent({ keepAlive: false, maxCachedSessions: 0, secureContext });
}

/** Simpleenroll at this est-ra with its demo passcode, trusting its root CA. */
export function targetOf(estRa: EstRa): Target {
  return {
    port: estRa.port,
    authorization: `Basic ${Buffer.from(`:${estRa.passcode}`).toString('base64')}`,
    agent: contextAgent(createSecureContext({ ca: estRa.rootCa })),
  };
}

export interface Outcome {
  readonly status: number;
  readonly ms: number;
  readonly resumed: boolean;
  readonly body: Buffer;
  readonly retryAfter?: string;
}

export function enroll(target: Target, csrBase64: string, localAddress?: string): Promise<Outcome> {
  const started = performance.now();
  return new Promise((done) => {
    const failed = (): void => done({ status: 0, ms: performance.now() - started, resumed: false, body: Buffer.alloc(0) });
    const req = request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: `/.well-known/est${target.label !== undefined ? `/${target.label}` : ''}/${target.operation ?? 'simpleenroll'}`,
        method: 'POST',
        agent: target.agent,
        ...(localAddress !== undefined ? { localAddress } : {}),
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

export interface LevelResult {
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
export type RoundResult = LevelResult & { rounds_enrollments_per_s: number[] };

/** Round-robin over the device keys, shared by all workers of a run; every call is a CSR never sent before. */
export function csrCycle(keys: readonly DeviceKey[]): () => string {
  let next = 0;
  return () => signCsr(keys[next++ % keys.length]!).toString('base64');
}

/** `concurrency` workers, each sending one request after the other until the deadline. */
export async function runLevel(target: Target, pid: number, nextCsr: () => string, concurrency: number, seconds: number): Promise<LevelResult> {
  const outcomes: Outcome[] = [];
  const deadline = performance.now() + seconds * 1000;
  const from = target.localAddresses;
  const worker = async (_: unknown, i: number): Promise<void> => {
    const localAddress = from?.[i % from.length];
    while (performance.now() < deadline) outcomes.push(await enroll(target, nextCsr(), localAddress));
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
export async function runCount(target: Target, nextCsr: () => string, concurrency: number, total: number): Promise<Outcome[]> {
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

export function summarize(outcomes: readonly Outcome[], elapsedS: number, estRaCpuMs: number, driverCpuMs: number): Omit<LevelResult, 'est_ra_rss_mb_at_end'> {
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
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/** The round with the median throughput, whole (its latencies belong to it), and every round's throughput. */
export function medianRound<T extends LevelResult>(rounds: readonly T[]): T & { rounds_enrollments_per_s: number[] } {
  const median = [...rounds].sort((a, b) => a.enrollments_per_s - b.enrollments_per_s)[Math.floor(rounds.length / 2)]!;
  return { ...median, rounds_enrollments_per_s: rounds.map((r) => r.enrollments_per_s) };
}

/** One real enrollment before timing: fails fast if est-ra refuses or answers something that is not a certificate. */
export async function checkOneEnrollment(target: Target, csr: string): Promise<void> {
  const outcome = await enroll(target, csr);
  if (outcome.status !== 200) throw new Error(`simpleenroll answered ${outcome.status}: ${outcome.body.toString('utf8').slice(0, 300)}`);
  const certificates = parseCertsOnly(Buffer.from(outcome.body.toString('latin1'), 'base64'));
  if (certificates.length !== 1) throw new Error(`simpleenroll answered ${certificates.length} certificates, expected 1`);
}

// --------------------------------------------------------------------- helpers

export function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
