/**
 * A real upstream RFC 7030 EST server for est-ra's tests, run as its own process:
 *
 *   node dist/test/upstream/est-server.js --dir DIR --client-ca FILE
 *     [--port 0] [--control-port 0] [--passcode P] [--label a/b] [--mode normal]
 *     [--days 365] [--keep-alive-ms 60000] [--exit-on-stdin-close]
 *
 * It shares no code with est-ra's src/: its PKI and every certificate come from
 * the openssl command line and request bodies are decoded with node-forge, so a
 * bug in est-ra's own DER or PKCS#7 code cannot hide behind the same bug here.
 * Only clients with a certificate from --client-ca may connect (that is how an
 * upstream CA authenticates its RA). A plain-HTTP control plane on 127.0.0.1
 * switches failure modes and reports stats. It prints one JSON line
 * ({url, control, rootCa, issuingCa}) once it listens, then runs until SIGTERM.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import forge from 'node-forge';
import { EST_OPERATIONS, isUpstreamMode, UPSTREAM_MODES, type EstOperation, type UpstreamMode, type UpstreamStats } from './protocol.js';

interface Options {
  readonly dir: string;
  readonly port: number;
  readonly controlPort: number;
  readonly clientCaFile: string;
  readonly passcode: string | undefined;
  /** Label path segments without slashes at either end, e.g. 'plant7/line1'. */
  readonly label: string | undefined;
  readonly mode: UpstreamMode;
  readonly days: number;
  readonly keepAliveMs: number;
  readonly exitOnStdinClose: boolean;
}

/** An answer decided before any certificate work: the status, a short reason and extra headers. */
class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

/** Files of the upstream's own PKI, all inside --dir. */
interface Pki {
  readonly config: string;
  readonly rootCert: string;
  readonly issuingCert: string;
  readonly issuingKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

/** A CA that signs device certificates: the real issuing CA, or the throwaway one of mode other-ca. */
interface Signer {
  readonly cert: string;
  readonly key: string;
}

const MAX_BODY_BYTES = 256 * 1024;

const ID_KP_CMC_RA = '1.3.6.1.5.5.7.3.28';

/** The CsrAttrs of mode libest: challengePassword (1.2.840.113549.1.9.7) and ecdsa-with-SHA256 (1.2.840.10045.4.3.2). */
const LIBEST_CSRATTRS = Buffer.from('3015' + '06092a864886f70d010907' + '06082a8648ce3d040302', 'hex');

/**
 * One openssl.cnf for every step, so no result depends on the system's
 * openssl.cnf defaults. [device] is applied after the CSR's own extensions
 * are copied and replaces any the CSR asked for (CA:TRUE, serverAuth...).
 */
const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
[root_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[issuing_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[device]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

function log(line: string): void {
  process.stderr.write(`[upstream] ${line}\n`);
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      dir: { type: 'string' },
      port: { type: 'string', default: '0' },
      'control-port': { type: 'string', default: '0' },
      'client-ca': { type: 'string' },
      passcode: { type: 'string' },
      label: { type: 'string' },
      mode: { type: 'string', default: 'normal' },
      days: { type: 'string', default: '365' },
      'keep-alive-ms': { type: 'string', default: '60000' },
      'exit-on-stdin-close': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.dir === undefined) throw new Error('--dir is required');
  if (values['client-ca'] === undefined) throw new Error('--client-ca is required');
  if (!isUpstreamMode(values.mode)) throw new Error(`--mode must be one of ${UPSTREAM_MODES.join(', ')}`);
  const label = values.label?.replace(/^\/+|\/+$/g, '');
  if (label !== undefined && !/^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(label)) throw new Error('--label must be path segments like a/b');
  return {
    dir: resolve(values.dir),
    port: Number(values.port),
    controlPort: Number(values['control-port']),
    clientCaFile: resolve(values['client-ca']),
    passcode: values.passcode,
    label,
    mode: values.mode,
    days: Number(values.days),
    keepAliveMs: Number(values['keep-alive-ms']),
    exitOnStdinClose: values['exit-on-stdin-close'],
  };
}

/** Runs openssl with an argument list (never a shell line); rejects with its stderr when it fails. */
function openssl(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    execFile('openssl', args, { encoding: 'utf8', maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`openssl ${args[0] ?? ''} failed: ${stderr.trim() || error.message}`));
      else resolvePromise({ stdout, stderr });
    });
  });
}

/** 16 random bytes, positive and without a leading zero byte, as openssl's -set_serial wants them. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return `0x${bytes.toString('hex')}`;
}

async function newP256Key(file: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

/** A self-signed P-256 CA in `dir`: the upstream's root, or the throwaway CA of mode other-ca. */
async function makeRootCa(dir: string, config: string, subject: string): Promise<Signer> {
  const key = join(dir, 'root-ca.key');
  const cert = join(dir, 'root-ca.pem');
  await newP256Key(key);
  await openssl(['req', '-new', '-x509', '-config', config, '-key', key, '-subj', subject, '-days', '3650', '-extensions', 'root_ca', '-out', cert]);
  return { cert, key };
}

/**
 * `openssl x509 -req`: signs a CSR with `signer`, extensions from [section] of
 * `config`; `extra` adds flags such as -copy_extensions or -force_pubkey.
 */
async function signCsr(options: {
  csr: string;
  cert: string;
  signer: Signer;
  days: number;
  config: string;
  section: string;
  extra?: readonly string[];
}): Promise<void> {
  const { csr, cert, signer, days, config, section, extra = [] } = options;
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    signer.cert,
    '-CAkey',
    signer.key,
    '-set_serial',
    randomSerial(),
    '-days',
    String(days),
    ...extra,
    '-extfile',
    config,
    '-extensions',
    section,
    '-out',
    cert,
  ]);
}

/** A P-256 key and a certificate for it signed by `signer` with the [section] of openssl.cnf. */
async function makeSigned(dir: string, name: string, config: string, signer: Signer, subject: string, section: string): Promise<Signer> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  await newP256Key(key);
  await openssl(['req', '-new', '-config', config, '-key', key, '-subj', subject, '-out', csr]);
  await signCsr({ csr, cert, signer, days: 3650, config, section });
  rmSync(csr);
  return { cert, key };
}

/**
 * The upstream's PKI in --dir: reused when complete, so a restarted upstream
 * keeps issuing under the same chain; otherwise made afresh in a scratch
 * directory and moved in, so a kill half-way never leaves a mixed set.
 */
async function ensurePki(dir: string): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'openssl.cnf');
  writeFileSync(config, OPENSSL_CONFIG);
  const pki: Pki = {
    config,
    rootCert: join(dir, 'root-ca.pem'),
    issuingCert: join(dir, 'issuing-ca.pem'),
    issuingKey: join(dir, 'issuing-ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
  };
  const rootKey = join(dir, 'root-ca.key');
  const files = [rootKey, pki.issuingKey, pki.serverKey, pki.serverCert, pki.issuingCert, pki.rootCert];
  if (files.every((file) => existsSync(file))) return pki;
  const scratch = mkdtempSync(join(dir, 'pki-new-'));
  try {
    const root = await makeRootCa(scratch, config, '/O=est-ra tests/CN=upstream root CA');
    const issuing = await makeSigned(scratch, 'issuing-ca', config, root, '/O=est-ra tests/CN=upstream issuing CA', 'issuing_ca');
    const server = await makeSigned(scratch, 'server', config, issuing, '/O=est-ra tests/CN=localhost', 'server');
    const made = [root.key, issuing.key, server.key, server.cert, issuing.cert, root.cert];
    made.forEach((file, i) => renameSync(file, files[i]!));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return pki;
}

/** Certs-only PKCS#7 (DER) of the given PEM files, in order, built by openssl. */
async function certsOnly(work: string, certFiles: readonly string[]): Promise<Buffer> {
  const out = join(work, `certs-${randomBytes(4).toString('hex')}.p7b`);
  await openssl(['crl2pkcs7', '-nocrl', ...certFiles.flatMap((file) => ['-certfile', file]), '-outform', 'DER', '-out', out]);
  const der = readFileSync(out);
  rmSync(out);
  return der;
}

/** Base64 in 64-character CRLF lines, as many EST servers send it: a client must not insist on one line. */
function base64Body(der: Buffer): string {
  return `${forge.util.encode64(der.toString('binary'), 64)}\r\n`;
}

/**
 * The CSR in an enroll body, as PEM for openssl. RFC 7030 bodies are base64 of
 * the DER (any line breaks); PEM is accepted too because admins post
 * `openssl req` output with curl. node-forge checks that the bytes are one
 * whole CertificationRequest SEQUENCE; openssl later checks the signature.
 */
function csrPemFromBody(body: Buffer): string {
  const text = body.toString('latin1');
  let der: string;
  if (text.includes('-----BEGIN')) {
    let blocks: forge.pem.ObjectPEM[];
    try {
      blocks = forge.pem.decode(text);
    } catch {
      throw new HttpProblem(400, 'malformed PEM');
    }
    const block = blocks.find((b) => b.type === 'CERTIFICATE REQUEST' || b.type === 'NEW CERTIFICATE REQUEST');
    if (!block) throw new HttpProblem(400, 'no CERTIFICATE REQUEST in the PEM body');
    der = block.body;
  } else {
    const compact = text.replace(/\s+/g, '');
    if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) throw new HttpProblem(400, 'body is not base64');
    der = forge.util.decode64(compact);
  }
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(der, true);
  } catch {
    throw new HttpProblem(400, 'body is not DER');
  }
  const parts = Array.isArray(asn1.value) ? asn1.value : [];
  const [info, algorithm, signature] = parts;
  const shaped =
    asn1.tagClass === forge.asn1.Class.UNIVERSAL &&
    asn1.type === forge.asn1.Type.SEQUENCE &&
    parts.length === 3 &&
    info?.type === forge.asn1.Type.SEQUENCE &&
    algorithm?.type === forge.asn1.Type.SEQUENCE &&
    signature?.type === forge.asn1.Type.BITSTRING;
  if (!shaped) throw new HttpProblem(400, 'body is not a PKCS#10 CertificationRequest');
  return forge.pem.encode({ type: 'CERTIFICATE REQUEST', body: der });
}

/** Basic credentials whose password equals the passcode; the user name is anything. */
function passcodeMatches(authorization: string | undefined, passcode: string): boolean {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (!match) return false;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const given = Buffer.from(decoded.slice(colon + 1), 'utf8');
  const wanted = Buffer.from(passcode, 'utf8');
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The EST operation a path names, or undefined (404). Without --label any label, or none, is served. */
function operationOf(pathname: string, label: string | undefined): EstOperation | undefined {
  const prefix = '/.well-known/est/';
  if (!pathname.startsWith(prefix)) return undefined;
  const rest = pathname.slice(prefix.length).split('/');
  const operation = rest.pop() ?? '';
  const givenLabel = rest.join('/');
  if (label !== undefined ? givenLabel !== label : rest.some((segment) => segment === '')) return undefined;
  return (EST_OPERATIONS as readonly string[]).includes(operation) ? (operation as EstOperation) : undefined;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) reject(new HttpProblem(413, 'body too large'));
      else resolvePromise(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** Every answer carries Content-Length, so a keep-alive client knows where it ends. */
function send(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: string | Buffer = ''): void {
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendText(res: ServerResponse, status: number, text: string, headers: OutgoingHttpHeaders = {}): void {
  send(res, status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers }, `${text}\n`);
}

/** 200 with base64 bytes; the Content-Transfer-Encoding header is RFC 7030's, dropped by RFC 8951 but still sent by many servers. */
function sendBase64(res: ServerResponse, bytes: Buffer, contentType: string): void {
  send(res, 200, { 'Content-Type': contentType, 'Content-Transfer-Encoding': 'base64' }, base64Body(bytes));
}

type MutableStats = { -readonly [K in keyof UpstreamStats]: UpstreamStats[K] };

/** The running upstream: PKI, mode and counters, and the two request handlers. */
class Upstream {
  private readonly stats: MutableStats;
  private throwawayCa: Promise<Signer> | undefined;

  constructor(
    private readonly options: Options,
    private readonly pki: Pki,
    private readonly cacerts: Buffer,
  ) {
    this.stats = {
      mode: options.mode,
      approved: false,
      tlsHandshakes: 0,
      tlsClientErrors: 0,
      requests: { cacerts: 0, simpleenroll: 0, simplereenroll: 0, csrattrs: 0, fullcmc: 0, other: 0 },
      issued: 0,
      issuedPerCsr: {},
      lastHadClientCert: false,
      lastClientSubject: null,
      lastClientSerial: null,
      lastPath: null,
    };
  }

  countHandshake(): void {
    this.stats.tlsHandshakes++;
  }

  countClientError(): void {
    this.stats.tlsClientErrors++;
  }

  /** EST over TLS. Any error of this code becomes a 500, never a crash. */
  handleEst(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    res.on('finish', () => log(`${req.method ?? '?'} ${req.url ?? '?'} -> ${res.statusCode} (${Date.now() - started} ms)`));
    this.est(req, res).catch((error: unknown) => {
      const problem = error instanceof HttpProblem ? error : new HttpProblem(500, `upstream error: ${error instanceof Error ? error.message : String(error)}`);
      if (problem.status === 500) log(problem.message);
      if (res.headersSent) res.destroy();
      else sendText(res, problem.status, problem.message, problem.status === 413 ? { ...problem.headers, Connection: 'close' } : problem.headers);
    });
  }

  private async est(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = new URL(req.url ?? '/', 'https://upstream.invalid').pathname;
    const peer = (req.socket as TLSSocket).getPeerX509Certificate();
    this.stats.lastHadClientCert = peer !== undefined;
    this.stats.lastClientSubject = peer ? peer.subject.split('\n').join(', ') : null;
    this.stats.lastClientSerial = peer ? peer.serialNumber : null;
    this.stats.lastPath = pathname;
    const operation = operationOf(pathname, this.options.label);
    if (!operation) {
      this.stats.requests.other++;
      await readBody(req);
      throw new HttpProblem(404, 'no such EST path');
    }
    this.stats.requests[operation]++;
    const method = operation === 'cacerts' || operation === 'csrattrs' ? 'GET' : 'POST';
    // The body is read whatever the answer, so the next request on a kept-alive connection starts cleanly.
    const body = await readBody(req);
    if (req.method !== method) throw new HttpProblem(405, `${operation} takes ${method}`, { Allow: method });
    if (operation === 'cacerts') {
      sendBase64(res, this.cacerts, 'application/pkcs7-mime');
      return;
    }
    if (operation === 'csrattrs') {
      if (this.stats.mode === 'csrattrs-down') throw new HttpProblem(500, 'upstream internal error (mode csrattrs-down)');
      if (this.stats.mode === 'libest') {
        // libest's example server: base64 then a NUL byte, which its Content-Length counts.
        send(
          res,
          200,
          { 'Content-Type': 'application/csrattrs', 'Content-Transfer-Encoding': 'base64' },
          Buffer.from(`${base64Body(LIBEST_CSRATTRS)}\0`, 'latin1'),
        );
        return;
      }
      send(res, 204, {});
      return;
    }
    if (this.options.passcode !== undefined && !passcodeMatches(req.headers.authorization, this.options.passcode)) {
      throw new HttpProblem(401, 'passcode required', { 'WWW-Authenticate': 'Basic realm="upstream"' });
    }
    if (operation === 'fullcmc') {
      this.fullCmc(req, res, body);
      return;
    }
    await this.enroll(req, res, body);
  }

  /**
   * /fullcmc (RFC 7030 §4.3) without a CMC engine: a fixed CMC-response-typed
   * answer that says what arrived (the body's SHA-256, its Content-Type, the
   * TLS client and whether an Authorization header came along), so a test can
   * prove a relay passed the request byte for byte over the RA's identity.
   */
  private fullCmc(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const peer = (req.socket as TLSSocket).getPeerX509Certificate();
    const report = [
      `sha256=${createHash('sha256').update(body).digest('hex')}`,
      `content-type=${req.headers['content-type'] ?? ''}`,
      `client=${peer ? peer.subject.split('\n').join(', ') : 'none'}`,
      `authorization=${req.headers.authorization === undefined ? 'absent' : 'present'}`,
    ].join(' ');
    send(
      res,
      200,
      { 'Content-Type': 'application/pkcs7-mime; smime-type=CMC-response', 'Content-Transfer-Encoding': 'base64', 'X-Upstream-Secret': 'not for devices' },
      Buffer.from(`${Buffer.from(report).toString('base64')}\r\n`),
    );
  }

  private async enroll(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const mode = this.stats.mode;
    switch (mode) {
      case 'hang':
        log(`${req.url ?? '?'}: hanging (mode hang)`);
        return; // the client waits until it gives up; stop() closes the connection
      case 'reset':
        log(`${req.url ?? '?'}: closing the connection unanswered (mode reset)`);
        req.socket.destroy();
        return;
      case 'unauthorized':
        throw new HttpProblem(401, 'the upstream does not accept these credentials', { 'WWW-Authenticate': 'Basic realm="upstream"' });
      case 'forbidden':
        throw new HttpProblem(403, 'the upstream refuses this request');
      case 'error500':
        throw new HttpProblem(500, 'upstream internal error (mode error500)');
      case 'garbage':
        sendBase64(res, Buffer.from('this is not a PKCS#7 certs-only message'), 'application/pkcs7-mime; smime-type=certs-only');
        return;
      case 'pending-far':
        await this.checkCsr(csrPemFromBody(body));
        throw new HttpProblem(202, 'pending approval', { 'Retry-After': '99999999999999999999' });
      case 'pending':
      case 'normal':
      case 'wrong-key':
      case 'other-ca':
      case 'csrattrs-down':
      case 'slow':
        break;
      case 'libest':
        // OpenSSL's base64 BIO drops a first line longer than its 1024-byte buffer; libest then finds no CSR.
        if (body.length > 1024 && !body.subarray(0, 1024).includes(0x0a)) throw new HttpProblem(400, 'Invalid or corrupted pkcs10 request');
        break;
    }
    const csrPem = csrPemFromBody(body);
    if (mode === 'libest') await this.libestProofOfPossession(req, csrPem);
    if (mode === 'pending' && !this.stats.approved) {
      await this.checkCsr(csrPem);
      throw new HttpProblem(202, 'pending approval', { 'Retry-After': '1' });
    }
    const der = await this.issue(csrPem, mode);
    this.stats.issued++;
    const csrSha256 = createHash('sha256')
      .update(forge.util.decode64(csrPem.replace(/-----[^-]+-----|\s/g, '')), 'latin1')
      .digest('hex');
    this.stats.issuedPerCsr[csrSha256] = (this.stats.issuedPerCsr[csrSha256] ?? 0) + 1;
    if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 300));
    sendBase64(res, der, 'application/pkcs7-mime; smime-type=certs-only');
  }

  /** A scratch directory per request, so concurrent requests never share files. */
  private async inScratch<T>(work: (dir: string) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(this.options.dir, 'work-'));
    try {
      return await work(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * 400 unless the CSR's self-signature verifies. `openssl req -verify`
   * exits 0 even when verification fails (openssl 3.0), so its message is read.
   */
  private async checkCsr(csrPem: string): Promise<void> {
    await this.inScratch(async (dir) => {
      const csr = join(dir, 'csr.pem');
      writeFileSync(csr, csrPem);
      const result = await openssl(['req', '-in', csr, '-noout', '-verify']).catch(() => undefined);
      if (!result || !/verify OK/.test(result.stdout + result.stderr)) throw new HttpProblem(400, 'the CSR signature does not verify');
    });
  }

  /**
   * libest's PoP check: a CSR with a challengePassword must carry this
   * connection's tls-unique, unless the client is an RA (id-kp-cmcRA). An RA
   * forwarding a device's CSR can never match, so without cmcRA it gets 401.
   */
  private async libestProofOfPossession(req: IncomingMessage, csrPem: string): Promise<void> {
    const peer = (req.socket as TLSSocket).getPeerX509Certificate();
    // keyUsage lists the extended key usages; Node leaves it undefined without the extension.
    const usages: unknown = peer?.keyUsage;
    if (Array.isArray(usages) && usages.includes(ID_KP_CMC_RA)) return;
    const text = await this.inScratch(async (dir) => {
      const csr = join(dir, 'csr.pem');
      writeFileSync(csr, csrPem);
      return (await openssl(['req', '-in', csr, '-noout', '-text'])).stdout;
    });
    if (/challengePassword/.test(text)) throw new HttpProblem(401, 'PoP check failed: tls-unique mismatch', { 'WWW-Authenticate': 'Basic realm="upstream"' });
  }

  /** A certs-only PKCS#7 (DER) with one certificate for the CSR, shaped by the mode. */
  private async issue(csrPem: string, mode: 'normal' | 'pending' | 'wrong-key' | 'other-ca' | 'libest' | 'csrattrs-down' | 'slow'): Promise<Buffer> {
    await this.checkCsr(csrPem);
    const signer = mode === 'other-ca' ? await this.otherCa() : { cert: this.pki.issuingCert, key: this.pki.issuingKey };
    return this.inScratch(async (dir) => {
      const csr = join(dir, 'csr.pem');
      const cert = join(dir, 'cert.pem');
      writeFileSync(csr, csrPem);
      const forceKey: string[] = [];
      if (mode === 'wrong-key') {
        // Same subject and extensions, another key: only a client that compares keys notices.
        const otherKey = join(dir, 'other.key');
        const otherPub = join(dir, 'other.pub');
        await newP256Key(otherKey);
        await openssl(['pkey', '-in', otherKey, '-pubout', '-out', otherPub]);
        forceKey.push('-force_pubkey', otherPub);
      }
      // -copy_extensions copy keeps the CSR's subjectAltName; [device] then replaces what an end entity must not choose.
      await signCsr({
        csr,
        cert,
        signer,
        days: this.options.days,
        config: this.pki.config,
        section: 'device',
        extra: ['-copy_extensions', 'copy', ...forceKey],
      });
      return certsOnly(dir, [cert]);
    });
  }

  /** The throwaway CA of mode other-ca: made once per process, trusted by nobody. */
  private otherCa(): Promise<Signer> {
    this.throwawayCa ??= (async () => {
      const dir = join(this.options.dir, 'other-ca');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      return makeRootCa(dir, this.pki.config, '/O=est-ra tests/CN=upstream throwaway CA');
    })().catch((error: unknown) => {
      this.throwawayCa = undefined; // the next request tries again
      throw error;
    });
    return this.throwawayCa;
  }

  /** The control plane: plain HTTP on 127.0.0.1, for tests only. */
  handleControl(req: IncomingMessage, res: ServerResponse): void {
    this.control(req, res).catch((error: unknown) => {
      const problem = error instanceof HttpProblem ? error : new HttpProblem(500, error instanceof Error ? error.message : String(error));
      if (!res.headersSent) sendText(res, problem.status, problem.message);
    });
  }

  private async control(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readBody(req)).toString('utf8').trim();
    const route = `${req.method ?? ''} ${new URL(req.url ?? '/', 'http://control.invalid').pathname}`;
    switch (route) {
      case 'POST /control/mode':
        if (!isUpstreamMode(body)) throw new HttpProblem(400, `mode must be one of ${UPSTREAM_MODES.join(', ')}`);
        this.stats.mode = body;
        this.stats.approved = false;
        log(`mode ${body}`);
        sendText(res, 200, body);
        return;
      case 'POST /control/approve':
        this.stats.approved = true;
        log('approved');
        sendText(res, 200, 'approved');
        return;
      case 'GET /control/stats':
        send(res, 200, { 'Content-Type': 'application/json' }, JSON.stringify(this.stats));
        return;
      default:
        throw new HttpProblem(404, 'control routes: POST /control/mode, POST /control/approve, GET /control/stats');
    }
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolvePromise((server.address() as AddressInfo).port);
    });
  });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const pki = await ensurePki(options.dir);
  const cacerts = await certsOnly(options.dir, [pki.issuingCert, pki.rootCert]);
  const upstream = new Upstream(options, pki, cacerts);

  const est = createHttpsServer(
    {
      key: readFileSync(pki.serverKey),
      cert: readFileSync(pki.serverCert, 'utf8') + readFileSync(pki.issuingCert, 'utf8'),
      // The RA CA the test gives, and the upstream's own CAs: an RA certificate it issued (est-ra renewing its own) works too.
      ca: [readFileSync(options.clientCaFile), readFileSync(pki.rootCert), readFileSync(pki.issuingCert)],
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => upstream.handleEst(req, res),
  );
  est.keepAliveTimeout = options.keepAliveMs;
  est.on('secureConnection', () => upstream.countHandshake());
  est.on('tlsClientError', (error) => {
    upstream.countClientError();
    log(`TLS handshake refused: ${error.message}`);
  });
  const control = createHttpServer((req, res) => upstream.handleControl(req, res));

  const port = await listen(est, options.port);
  const controlPort = await listen(control, options.controlPort);

  const shutdown = (): void => {
    est.close();
    control.close();
    est.closeAllConnections();
    control.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (options.exitOnStdinClose) {
    // The test helper's pipe: when the test process dies, so does its upstream.
    process.stdin.on('end', shutdown);
    process.stdin.on('close', shutdown);
    process.stdin.resume();
  }

  const line = { url: `https://127.0.0.1:${port}`, control: `http://127.0.0.1:${controlPort}`, rootCa: pki.rootCert, issuingCa: pki.issuingCert };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// A bug in one request must not take the upstream down with every other test's connection.
process.on('uncaughtException', (error) => log(`uncaught: ${error.stack ?? error.message}`));
process.on('unhandledRejection', (reason) => log(`unhandled rejection: ${String(reason)}`));

main().catch((error: unknown) => {
  log(`cannot start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
