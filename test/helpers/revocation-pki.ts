import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { mustRun } from './run.js';

/*
 * A small `openssl ca` PKI with real revocation: index.txt, CRLs from
 * `openssl ca -gencrl` and a real `openssl ocsp` responder process, all made
 * with the openssl 3.0 command line as an admin would.
 *
 * Layout of the directory given to makeRevocationCa:
 *   openssl.cnf, ca.key, ca.crt, index.txt, serial, crlnumber, newcerts/
 *   ocsp.key, ocsp.crt        the OCSP responder's own (delegated) certificate
 *   issued/<name>.{key,csr,crt}
 *   crl/crl-<n>.{pem,der}     every CRL written; crl.pem and crl.der are the latest
 */

export interface RevocationCaOptions {
  /** When set, every client certificate carries `crlDistributionPoints = URI:<url>`. */
  readonly crlDistributionPoint?: string;
  /** When set, every client certificate carries `authorityInfoAccess = OCSP;URI:<url>`. */
  readonly ocspUrl?: string;
  /** The CA's common name; 'est-ra test revocation CA' by default. */
  readonly commonName?: string;
}

export interface IssuedCert {
  /** PEM certificate: P-256, CN=<name>, CA:FALSE, EKU clientAuth. */
  readonly certFile: string;
  /** Its unencrypted PEM private key. */
  readonly keyFile: string;
  /** As serialOf returns it. */
  readonly serial: string;
}

export interface CrlFiles {
  readonly pemFile: string;
  readonly derFile: string;
}

export interface WriteCrlOptions {
  /** nextUpdate = lastUpdate + hours; 24 by default. May be fractional. */
  readonly hours?: number;
  /**
   * lastUpdate = now - lastUpdateAgoHours; 0 by default. With
   * `{ lastUpdateAgoHours: 3, hours: 1 }` the CRL is stale: its nextUpdate
   * lies two hours in the past.
   */
  readonly lastUpdateAgoHours?: number;
}

export interface RefreshOption {
  /**
   * Restart this CA's running OCSP responders afterwards (the default), so
   * their very next answer reflects the change. See startOcspResponder for why.
   */
  readonly refreshResponders?: boolean;
}

export interface OcspResponderOptions {
  /** The port to listen on; 0 (the default) lets openssl pick a free one. */
  readonly port?: number;
  /** Minutes until nextUpdate in each response (`-nmin`); 5 by default. */
  readonly nmin?: number;
}

/** A running `openssl ocsp` responder process serving this CA's index.txt. */
export interface OcspResponder {
  /** http://127.0.0.1:PORT; the same after restart(). */
  readonly url: string;
  readonly port: number;
  /** The current openssl process id (changes on restart). */
  readonly pid: number;
  /** SIGTERM and wait for it to exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for it to exit, as if the responder host died. */
  kill(): Promise<void>;
  /** Stops it if running and starts it again on the same port, reading index.txt afresh. */
  restart(): Promise<void>;
  /** What openssl ocsp wrote on stderr (one line per request), for failure messages. */
  logs(): string;
}

export interface RevocationCa {
  readonly dir: string;
  /** PEM CA certificate: self-signed, P-256, basicConstraints CA:TRUE, keyUsage keyCertSign,cRLSign. */
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly configFile: string;
  readonly indexFile: string;
  /** The OCSP responder's certificate (EKU OCSPSigning, id-pkix-ocsp-nocheck), issued by the CA, and its key. */
  readonly ocspCertFile: string;
  readonly ocspKeyFile: string;
  /**
   * A new P-256 key and CSR (CN=<name>), signed by `openssl ca -batch -notext`.
   * `name` is also the file name: letters, digits, '.', '_' and '-' only.
   * Calls on one CA are serialized, so Promise.all is safe.
   */
  issue(name: string, options?: { days?: number } & RefreshOption): Promise<IssuedCert>;
  /** `openssl ca -revoke`, optionally with `-crl_reason` (e.g. 'keyCompromise'). */
  revoke(certFile: string, options?: { reason?: string } & RefreshOption): Promise<void>;
  /**
   * `openssl ca -gencrl` with explicit `-crl_lastupdate` and `-crl_nextupdate`
   * (both exist in OpenSSL 3.0; `-crlhours` alone counts from now, not from
   * lastUpdate). A stale CRL is written directly: `{ lastUpdateAgoHours: 3, hours: 1 }`;
   * no clock injection is needed.
   */
  writeCrl(options?: WriteCrlOptions): Promise<CrlFiles>;
  /**
   * Starts `openssl ocsp -index index.txt -port <port> -rsigner ocsp.crt -rkey ocsp.key
   * -CA ca.crt -nmin 5 -ignore_err` and resolves once it listens (openssl prints its
   * `ACCEPT [::]:PORT PID=n` line after listen()). It listens on all interfaces:
   * OpenSSL 3.0's `-port` takes only a number.
   *
   * One process, one request at a time: `-multi` exists in 3.0 but its parent
   * ignores SIGTERM until a child exits and leaves its children listening when
   * SIGKILLed, so it is not used.
   *
   * OpenSSL 3.0 rereads index.txt only before accepting the next connection, so the
   * first request after a change would still get the old answer; issue() and revoke()
   * therefore restart running responders unless told not to.
   *
   * The process never outlives the test process: it is SIGKILLed on process
   * exit, and where util-linux `setpriv` exists it also gets PR_SET_PDEATHSIG
   * (covers a SIGKILLed test runner).
   */
  startOcspResponder(options?: OcspResponderOptions): Promise<OcspResponder>;
}

const START_TIMEOUT_MS = 10_000;
const MAX_LOG_CHARS = 256 * 1024;
const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

/** What `openssl x509 -serial -noout` prints after `serial=`, lowercased: openssl's hex digits exactly, leading zeros included. */
export async function serialOf(certFile: string): Promise<string> {
  const out = await mustRun('openssl', ['x509', '-in', certFile, '-noout', '-serial']);
  const match = /^serial=([0-9A-Fa-f]+)\s*$/.exec(out);
  if (!match) throw new Error(`openssl x509 -serial: unexpected output ${out}`);
  return match[1]!.toLowerCase();
}

/** A value that goes into openssl.cnf unquoted: nothing the config parser or a URI list would read specially. */
function configSafe(what: string, value: string): string {
  if (/[\s$#"'\\,;]/.test(value)) throw new Error(`${what} cannot go into openssl.cnf as is: ${value}`);
  return value;
}

function opensslConfig(dir: string, options: RevocationCaOptions): string {
  const clientExtras = [
    ...(options.crlDistributionPoint !== undefined ? [`crlDistributionPoints = URI:${configSafe('crlDistributionPoint', options.crlDistributionPoint)}`] : []),
    ...(options.ocspUrl !== undefined ? [`authorityInfoAccess = OCSP;URI:${configSafe('ocspUrl', options.ocspUrl)}`] : []),
  ];
  return `# Written by test/helpers/revocation-pki.ts
[ca]
default_ca = test_ca

[test_ca]
dir = ${configSafe('CA directory', dir)}
database = $dir/index.txt
serial = $dir/serial
crlnumber = $dir/crlnumber
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_hours = 24
policy = policy_anything
copy_extensions = copy
unique_subject = no
x509_extensions = client_ext
crl_extensions = crl_ext

[policy_anything]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
emailAddress = optional

[req]
prompt = no
distinguished_name = req_dn

[req_dn]
CN = unused

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
${clientExtras.join('\n')}

[ocsp_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[crl_ext]
authorityKeyIdentifier = keyid:always
`;
}

/** YYYYMMDDHHMMSSZ, which openssl stores as UTCTime up to 2049 as RFC 5280 wants. */
function generalizedTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000)
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.000Z$/, 'Z');
}

function setprivPath(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  for (const entry of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(entry, 'setpriv');
    if (entry !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

type OcspChild = ChildProcessByStdio<null, Readable, Readable>;

/** Every responder process still running, SIGKILLed when this process exits. */
const liveChildren = new Set<OcspChild>();
let exitHookInstalled = false;

function trackChild(child: OcspChild): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const each of liveChildren) each.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

interface Launched {
  readonly child: OcspChild;
  readonly port: number;
  readonly exited: Promise<void>;
}

function launchResponder(ca: RevocationCa, port: number, nmin: number, log: (text: string) => void): Promise<Launched> {
  const ocspArgs = [
    'ocsp',
    '-index',
    ca.indexFile,
    '-port',
    String(port),
    '-rsigner',
    ca.ocspCertFile,
    '-rkey',
    ca.ocspKeyFile,
    '-CA',
    ca.caFile,
    '-nmin',
    String(nmin),
    '-ignore_err',
  ];
  const setpriv = setprivPath();
  const [command, args] = setpriv !== undefined ? [setpriv, ['--pdeathsig', 'KILL', 'openssl', ...ocspArgs]] : ['openssl', ocspArgs];
  const child = spawn(command, args, { cwd: ca.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.stderr.setEncoding('utf8').on('data', log);
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`openssl ocsp: ${why}`));
    };
    const timer = setTimeout(() => fail(`no ACCEPT line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.once('error', (error) => fail(error.message));
    void exited.then(() => fail(`exited (${child.exitCode ?? child.signalCode}) before listening`));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (text) => {
      log(`${text}\n`);
      const match = /^ACCEPT .*:(\d+) PID=\d+/.exec(text);
      if (!match || settled) return;
      settled = true;
      clearTimeout(timer);
      resolvePromise({ child, port: Number(match[1]), exited });
    });
  });
}

/**
 * Creates an `openssl ca` CA in `dir` (created if missing): a P-256 CA key and
 * self-signed certificate, openssl.cnf, index.txt, serial (random start),
 * crlnumber, and a delegated OCSP responder certificate. Start a responder with
 * startOcspResponder(); stop it before removing the directory.
 */
export async function makeRevocationCa(dir: string, options: RevocationCaOptions = {}): Promise<RevocationCa> {
  dir = resolve(dir);
  const configFile = join(dir, 'openssl.cnf');
  const caKeyFile = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  const indexFile = join(dir, 'index.txt');
  const ocspKeyFile = join(dir, 'ocsp.key');
  const ocspCsrFile = join(dir, 'ocsp.csr');
  const ocspCertFile = join(dir, 'ocsp.crt');
  const issuedDir = join(dir, 'issued');
  const crlDir = join(dir, 'crl');
  for (const each of [dir, join(dir, 'newcerts'), issuedDir, crlDir]) mkdirSync(each, { recursive: true });
  writeFileSync(configFile, opensslConfig(dir, options));
  writeFileSync(indexFile, '');
  // A random positive start, so two CAs in one test do not hand out the same serials.
  writeFileSync(join(dir, 'serial'), `${randomBytes(8).toString('hex').replace(/^./, '4')}\n`);
  writeFileSync(join(dir, 'crlnumber'), '01\n');

  const commonName = options.commonName ?? 'est-ra test revocation CA';
  await mustRun('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKeyFile]);
  await mustRun('openssl', [
    'req',
    '-new',
    '-x509',
    '-config',
    configFile,
    '-key',
    caKeyFile,
    '-subj',
    `/O=est-ra tests/CN=${commonName}`,
    '-days',
    '3650',
    '-sha256',
    '-extensions',
    'v3_ca',
    '-out',
    caFile,
  ]);
  const ca = (args: readonly string[]): Promise<string> => mustRun('openssl', ['ca', '-config', configFile, ...args], { cwd: dir });
  await mustRun('openssl', [
    'req',
    '-new',
    ...P256,
    '-nodes',
    '-config',
    configFile,
    '-keyout',
    ocspKeyFile,
    '-subj',
    '/CN=est-ra test OCSP responder',
    '-out',
    ocspCsrFile,
  ]);
  await ca(['-batch', '-notext', '-extensions', 'ocsp_ext', '-days', '3650', '-in', ocspCsrFile, '-out', ocspCertFile]);

  // `openssl ca` rewrites index.txt, serial and crlnumber: one command at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work);
    queue = next.catch(() => undefined);
    return next;
  };

  const responders = new Set<OcspResponder>();
  const refresh = async (option: RefreshOption | undefined): Promise<void> => {
    if (option?.refreshResponders === false) return;
    for (const responder of [...responders]) await responder.restart();
  };
  let crlCount = 0;

  const self: RevocationCa = {
    dir,
    caFile,
    caKeyFile,
    configFile,
    indexFile,
    ocspCertFile,
    ocspKeyFile,

    issue(name, issueOptions) {
      if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) return Promise.reject(new Error(`issue: unusable name ${name}`));
      return serialized(async () => {
        const keyFile = join(issuedDir, `${name}.key`);
        const csrFile = join(issuedDir, `${name}.csr`);
        const certFile = join(issuedDir, `${name}.crt`);
        await mustRun('openssl', ['req', '-new', ...P256, '-nodes', '-config', configFile, '-keyout', keyFile, '-subj', `/CN=${name}`, '-out', csrFile]);
        const days = issueOptions?.days ?? 30;
        await ca(['-batch', '-notext', '-extensions', 'client_ext', '-days', String(days), '-in', csrFile, '-out', certFile]);
        await refresh(issueOptions);
        return { certFile, keyFile, serial: await serialOf(certFile) };
      });
    },

    revoke(certFile, revokeOptions) {
      return serialized(async () => {
        const reason = revokeOptions?.reason !== undefined ? ['-crl_reason', revokeOptions.reason] : [];
        await ca(['-revoke', certFile, ...reason]);
        await refresh(revokeOptions);
      });
    },

    writeCrl(crlOptions) {
      return serialized(async () => {
        const hours = crlOptions?.hours ?? 24;
        const lastUpdate = Date.now() - (crlOptions?.lastUpdateAgoHours ?? 0) * 3_600_000;
        const nextUpdate = lastUpdate + hours * 3_600_000;
        crlCount += 1;
        const pemFile = join(crlDir, `crl-${crlCount}.pem`);
        const derFile = join(crlDir, `crl-${crlCount}.der`);
        await ca(['-gencrl', '-crl_lastupdate', generalizedTime(lastUpdate), '-crl_nextupdate', generalizedTime(nextUpdate), '-out', pemFile]);
        await mustRun('openssl', ['crl', '-in', pemFile, '-outform', 'DER', '-out', derFile]);
        copyFileSync(pemFile, join(dir, 'crl.pem'));
        copyFileSync(derFile, join(dir, 'crl.der'));
        return { pemFile, derFile };
      });
    },

    async startOcspResponder(responderOptions) {
      const nmin = responderOptions?.nmin ?? 5;
      let logText = '';
      const log = (text: string): void => {
        logText = (logText + text).slice(-MAX_LOG_CHARS);
      };
      const failed = (error: unknown): Error => new Error(`${error instanceof Error ? error.message : String(error)}\n${logText}`);
      let current = await launchResponder(self, responderOptions?.port ?? 0, nmin, log).catch((error: unknown) => {
        throw failed(error);
      });
      const port = current.port;
      const running = (): boolean => current.child.exitCode === null && current.child.signalCode === null;
      const end = async (signal: NodeJS.Signals): Promise<void> => {
        responders.delete(handle);
        if (running()) current.child.kill(signal);
        await current.exited;
      };
      const handle: OcspResponder = {
        url: `http://127.0.0.1:${port}`,
        port,
        get pid() {
          return current.child.pid ?? -1;
        },
        stop: () => end('SIGTERM'),
        kill: () => end('SIGKILL'),
        async restart() {
          await end('SIGTERM');
          current = await launchResponder(self, port, nmin, log).catch((error: unknown) => {
            throw failed(error);
          });
          responders.add(handle);
        },
        logs: () => logText,
      };
      responders.add(handle);
      return handle;
    },
  };
  return self;
}
