import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { UpstreamMode, UpstreamStartLine, UpstreamStats } from '../upstream/protocol.js';
import { mustRun } from './run.js';

export type { UpstreamMode, UpstreamStats } from '../upstream/protocol.js';

export interface UpstreamOptions {
  /** Where the upstream keeps its PKI; a temp directory (removed by close()) when absent. */
  readonly dir?: string;
  /** PEM of the CA whose client certificates may connect: the RA CA of makeRaIdentity. */
  readonly clientCaFile: string;
  /** When set, enroll requests need `Authorization: Basic base64(anything:passcode)`. */
  readonly passcode?: string;
  /** When set, only /.well-known/est/<label>/... is served (one or more segments). */
  readonly label?: string;
  readonly mode?: UpstreamMode;
  /** The EST port; 0 (the default) picks a free one. */
  readonly port?: number;
}

/** A running test upstream EST server (test/upstream/est-server.ts) in its own process. */
export interface Upstream {
  /** https://127.0.0.1:PORT; the same after restart(). */
  readonly url: string;
  /** url + '/.well-known/est' + ('/' + label when a label is served). */
  readonly baseUrl: string;
  readonly port: number;
  /** The plain-HTTP control plane; the same after restart(). */
  readonly controlUrl: string;
  readonly dir: string;
  /** TLS trust anchor for the upstream and root of every chain it issues. */
  readonly rootCaFile: string;
  readonly issuingCaFile: string;
  /** Switches how enroll requests are answered; leaving 'pending' and entering it again forgets an approval. */
  setMode(mode: UpstreamMode): Promise<void>;
  /** In mode 'pending', every later enroll request issues. */
  approve(): Promise<void>;
  stats(): Promise<UpstreamStats>;
  /** SIGTERM and wait; resolves with the exit code (0 for a clean stop). Keeps the directory. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait, as if the upstream host died. Keeps the directory. */
  kill(): Promise<void>;
  /** Stops it if running and starts it again on the same ports and directory: the PKI is reused, so old certificates still chain; mode and counters start afresh. */
  restart(): Promise<void>;
  /** stop(), then removes the directory if startUpstream made it. */
  close(): Promise<void>;
  /** What the upstream wrote on stderr (one line per request), for failure messages. */
  logs(): string;
}

type UpstreamChild = ChildProcessByStdio<Writable, Readable, Readable>;

interface Launched {
  readonly child: UpstreamChild;
  readonly line: UpstreamStartLine;
  readonly exited: Promise<number | null>;
}

const SERVER_SCRIPT = fileURLToPath(new URL('../upstream/est-server.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const MAX_LOG_CHARS = 256 * 1024;

/**
 * Spawns the server and waits for its JSON start line. Its stdin is a pipe
 * it watches (--exit-on-stdin-close), so an upstream never outlives a test
 * run that crashed or was interrupted before stop().
 */
function launch(args: readonly string[], log: (text: string) => void): Promise<Launched> {
  const child = spawn(process.execPath, [SERVER_SCRIPT, ...args, '--exit-on-stdin-close'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stderr.setEncoding('utf8').on('data', log);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`test upstream: ${why}`));
    };
    const timer = setTimeout(() => fail(`no start line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.once('error', (error) => fail(error.message));
    void exited.then((code) => fail(`exited ${code} before listening`));
    createInterface({ input: child.stdout }).once('line', (text) => {
      let line: UpstreamStartLine;
      try {
        line = JSON.parse(text) as UpstreamStartLine;
      } catch {
        fail(`not a start line: ${text}`);
        return;
      }
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ child, line, exited });
    });
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** One control-plane call; throws with the server's own text unless it answers 200. */
async function control(controlUrl: string, method: 'GET' | 'POST', path: string, body?: string): Promise<string> {
  const response = await fetch(`${controlUrl}${path}`, { method, body });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`test upstream ${method} ${path}: ${response.status} ${text}`);
  return text;
}

/** Starts the test upstream on 127.0.0.1 and waits until it listens. */
export async function startUpstream(options: UpstreamOptions): Promise<Upstream> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'est-upstream-'));
  const label = options.label?.replace(/^\/+|\/+$/g, '');
  let logText = '';
  const log = (text: string): void => {
    logText = (logText + text).slice(-MAX_LOG_CHARS);
  };
  const args = (port: number, controlPort: number): string[] => [
    '--dir',
    dir,
    '--client-ca',
    options.clientCaFile,
    '--port',
    String(port),
    '--control-port',
    String(controlPort),
    ...(options.passcode !== undefined ? ['--passcode', options.passcode] : []),
    ...(label !== undefined ? ['--label', label] : []),
    ...(options.mode !== undefined ? ['--mode', options.mode] : []),
  ];

  let current = await launch(args(options.port ?? 0, 0), log).catch((error: unknown) => {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logText}`);
  });
  const { url, control: controlUrl, rootCa, issuingCa } = current.line;
  const running = (): boolean => current.child.exitCode === null && current.child.signalCode === null;
  const stop = async (): Promise<number | null> => {
    if (running()) current.child.kill('SIGTERM');
    return current.exited;
  };

  return {
    url,
    baseUrl: `${url}/.well-known/est${label !== undefined ? `/${label}` : ''}`,
    port: portOf(url),
    controlUrl,
    dir,
    rootCaFile: rootCa,
    issuingCaFile: issuingCa,
    async setMode(mode) {
      await control(controlUrl, 'POST', '/control/mode', mode);
    },
    async approve() {
      await control(controlUrl, 'POST', '/control/approve');
    },
    async stats() {
      return JSON.parse(await control(controlUrl, 'GET', '/control/stats')) as UpstreamStats;
    },
    stop,
    async kill() {
      if (running()) current.child.kill('SIGKILL');
      await current.exited;
    },
    async restart() {
      await stop();
      current = await launch(args(portOf(url), portOf(controlUrl)), log).catch((error: unknown) => {
        throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logText}`);
      });
    },
    async close() {
      await stop();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
    logs: () => logText,
  };
}

export interface RaIdentity {
  /** The test "RA CA": give it to the upstream as clientCaFile. */
  readonly caFile: string;
  readonly caKeyFile: string;
  /** The RA's client certificate (CN=est-ra RA, P-256, EKU clientAuth and id-kp-cmcRA, RFC 7030 §3.7) and its key, PEM. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The same certificate and key as PKCS#12, for `tls.createSecureContext({ pfx, passphrase })`. */
  readonly p12File: string;
  readonly p12Passphrase: string;
}

const RA_OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
[ra_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ra_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, 1.3.6.1.5.5.7.3.28
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ra_client_without_cmcra]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/**
 * The RA's own identity towards the upstream, made with the openssl CLI as an
 * admin would: a test RA CA and an RA client certificate under it, plus a
 * PKCS#12 with a random passphrase. OpenSSL 3's default PKCS#12 (AES-256,
 * PBKDF2) is what Node's TLS reads, so no -legacy. The CA is left out of the
 * PKCS#12 because Node would also trust it for the upstream's server certificate.
 * `cmcRa: false` leaves id-kp-cmcRA out (clientAuth only), as many RA certificates are issued.
 */
export async function makeRaIdentity(dir: string, options: { cmcRa?: boolean } = {}): Promise<RaIdentity> {
  const config = join(dir, 'ra-openssl.cnf');
  const caKeyFile = join(dir, 'ra-ca.key');
  const caFile = join(dir, 'ra-ca.crt');
  const keyFile = join(dir, 'ra.key');
  const csrFile = join(dir, 'ra.csr');
  const certFile = join(dir, 'ra.crt');
  const p12File = join(dir, 'ra.p12');
  const p12Passphrase = randomBytes(12).toString('hex');
  writeFileSync(config, RA_OPENSSL_CONFIG);
  const p256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await mustRun('openssl', ['genpkey', ...p256, '-out', caKeyFile]);
  await mustRun('openssl', [
    'req',
    '-new',
    '-x509',
    '-config',
    config,
    '-key',
    caKeyFile,
    '-subj',
    '/O=est-ra tests/CN=est-ra test RA CA',
    '-days',
    '3650',
    '-extensions',
    'ra_ca',
    '-out',
    caFile,
  ]);
  await mustRun('openssl', ['genpkey', ...p256, '-out', keyFile]);
  await mustRun('openssl', ['req', '-new', '-config', config, '-key', keyFile, '-subj', '/CN=est-ra RA', '-out', csrFile]);
  const serial = `0x${randomBytes(16).toString('hex').replace(/^./, '4')}`;
  await mustRun('openssl', [
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    caFile,
    '-CAkey',
    caKeyFile,
    '-set_serial',
    serial,
    '-days',
    '825',
    '-extfile',
    config,
    '-extensions',
    options.cmcRa === false ? 'ra_client_without_cmcra' : 'ra_client',
    '-out',
    certFile,
  ]);
  await mustRun('openssl', [
    'pkcs12',
    '-export',
    '-in',
    certFile,
    '-inkey',
    keyFile,
    '-name',
    'est-ra RA',
    '-out',
    p12File,
    '-passout',
    `pass:${p12Passphrase}`,
  ]);
  return { caFile, caKeyFile, certFile, keyFile, p12File, p12Passphrase };
}
