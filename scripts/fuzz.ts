/**
 * `npm run fuzz`: hostile input through the real server over real TLS (issue #10).
 * Seeded and bounded: FUZZ_CASES cases (default 100 000), FUZZ_SEED (default 1).
 * Each case is drawn by weight from these kinds, each with the statuses it
 * may get (anything else is a finding):
 *
 * - passcode cases (scripts/fuzz/passcode-cases.ts): mutated CSRs as DER,
 *   base64 or PEM, hostile Authorization headers, label paths, content
 *   types, random bodies; any status below 500, 501 for serverkeygen/fullcmc.
 * - multipart (scripts/fuzz/multipart.ts): form-data and mixed bodies with a
 *   CSR part, nested, broken boundaries; 415 under a multipart type, else
 *   200 or 400.
 * - client certificates (scripts/fuzz/client-certs.ts): a pool of TLS client
 *   certificates with hostile fields, signed by the bootstrap CA of profile
 *   `certs` (enroll by client certificate), by est-ra's own issuing CA
 *   (renewals), by an untrusted key, self-signed, with bad intermediates, or
 *   really issued by est-ra; 200, 400 or 403. A handshake OpenSSL refuses is
 *   counted as `tls-refused`, not a finding.
 * - upstream (scripts/fuzz/upstream.ts): enrollments under `upstream: est`
 *   profiles forwarded to a fuzzing upstream in this process, which answers
 *   with the case's hostile answer: 200 for an answer that is good, 502 for
 *   a bad one, 202 for an outage or an upstream 202; /csrattrs must stay 200
 *   or 204 whatever the upstream says, /cacerts 200 or 503.
 *
 * The process must see no unhandled rejection and no dropped connection,
 * and its RSS after a full GC may grow at most RSS_SECOND_HALF_GROWTH_MAX_MB
 * over the second half of the run (a leak keeps climbing; the allocator's
 * and OpenSSL's high-water mark is reached in the first tenths); the JSON
 * line prints per-kind statuses, the answers the upstream served, and the
 * memory split (heap, external, array buffers, RSS) before and after. A
 * finding prints the case and the run fails; a finding becomes a vector
 * under test/vectors/ with a test that replays it.
 *
 *   npm run fuzz                          # 100 000 cases
 *   FUZZ_CASES=20000 FUZZ_SEED=7 npm run fuzz
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import YAML from 'yaml';
import { DEMO_INIT, initStateDir } from '../src/cli/init.js';
import { parseConfig } from '../src/config/load.js';
import { parseCertsOnly } from '../src/pki/certs-only.js';
import { decodeDerBody } from '../src/pki/der-body.js';
import { startServer } from '../src/server.js';
import { makeClientCertPool, type ClientCertEntry } from './fuzz/client-certs.js';
import { multipartCase } from './fuzz/multipart.js';
import { passcodeCase } from './fuzz/passcode-cases.js';
import { caCertificate, csr, name, newKey, subjectAndKey, toPem, type KeyPair } from './fuzz/pki.js';
import { int, pick, prng, weighted, type Random } from './fuzz/random.js';
import { ANSWERS, startFuzzUpstream } from './fuzz/upstream.js';

const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? 1);
const CONCURRENCY = 16;
/**
 * RSS may grow this much from the middle of the run to its end before it counts as a leak. Not from the start:
 * RSS climbs to a high-water mark in the first tenths and stays (CI: 183, 235, 239, 248, 256, 258, 254, 259, 255, 254 MB
 * at each tenth), and where the run starts varies (155 to 207 MB), so start-to-end growth measured the start.
 */
const RSS_SECOND_HALF_GROWTH_MAX_MB = 48;
const CLIENT_CERT_POOL = 200;
/** Profiles whose upstream has outages: each has its own health circuit breaker, so more of them reach the upstream. */
const FLAKY_PROFILES = 4;

/** How often each kind of case is drawn; FUZZ_KINDS=a,b keeps only those (e.g. FUZZ_KINDS=upstream-enroll). */
const KIND_WEIGHTS = (
  [
    [56, 'passcode'],
    [9, 'multipart'],
    [20, 'client certificate'],
    [10, 'upstream enroll'],
    [3, 'upstream csrattrs'],
    [2, 'upstream cacerts'],
  ] as const
).filter(([, kind]) => process.env.FUZZ_KINDS?.split(',').includes(kind.replace(' ', '-')) ?? true);

interface FuzzCase {
  readonly kind: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  /** The agent with this case's TLS client certificate. */
  readonly agent?: Agent;
  readonly allowed: (status: number) => boolean;
  /** More about the case for a finding (the certificate, the upstream answer). */
  readonly detail?: string;
}

type Outcome = { status: number } | { refused: string } | { dropped: string };

/** TLS connections the fuzzer opened (a keep-alive socket is reused otherwise): handshakes are the costliest part of a case. */
let handshakes = 0;

const only =
  (...statuses: number[]) =>
  (status: number): boolean =>
    statuses.includes(status);

function send(agent: Agent, port: number, fuzz: FuzzCase): Promise<Outcome> {
  return new Promise((resolve) => {
    let secured = false;
    const req = request({ host: '127.0.0.1', port, agent: fuzz.agent ?? agent, method: fuzz.method, path: fuzz.path, headers: fuzz.headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      res.on('error', (err) => resolve({ dropped: err.message }));
    });
    req.on('socket', (socket) => {
      if (req.reusedSocket) secured = true;
      else {
        handshakes++;
        socket.once('secureConnect', () => (secured = true));
      }
    });
    req.on('error', (err: Error & { code?: string }) => {
      // OpenSSL refusing the client certificate: inside the handshake (TLS 1.2), or as an alert on the first read (TLS 1.3).
      const code = err.code ?? err.message;
      if (fuzz.agent && (!secured || code.startsWith('ERR_SSL_'))) resolve({ refused: code });
      else resolve({ dropped: `${code} ${err.message}` });
    });
    req.end(fuzz.body);
  });
}

interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** process.memoryUsage() in MB after a full garbage collection (node --expose-gc), so heap not yet collected does not count. */
function settledMemory(): Memory {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  const mb = (bytes: number): number => Math.round(bytes / 1048576);
  return {
    rss: mb(usage.rss),
    heapUsed: mb(usage.heapUsed),
    heapTotal: mb(usage.heapTotal),
    external: mb(usage.external),
    arrayBuffers: mb(usage.arrayBuffers),
  };
}

/** The fuzz configuration: init's demo profile, plus `certs` (client certificates), `up`, `flaky-N` and `up-cacerts` (upstream: est). */
function fuzzConfig(configYaml: string, dir: string, upstreamUrl: string): string {
  const config = YAML.parse(configYaml) as {
    limits: Record<string, number>;
    authentication_policies: Record<string, Record<string, unknown>>;
    profiles: Record<string, Record<string, unknown>>;
  };
  // Lift the per-address budgets: the fuzzer is one address and must reach the parsers, not the 429.
  Object.assign(config.limits, {
    refusals_per_minute_per_address: 100_000_000,
    refusals_per_minute_per_passcode: 100_000_000,
    max_connections_per_address: 1024,
  });
  config.authentication_policies.bootstrap = {
    ...config.authentication_policies.demo,
    authentication_cas: [join(dir, 'bootstrap-ca.crt')],
    renewal_cas: [join(dir, 'bootstrap-ca.crt')],
  };
  const demo = config.profiles.demo!;
  const rules: Record<string, unknown> = { ...demo, default: false };
  delete rules.local_ca;
  config.profiles.certs = {
    ...demo,
    default: false,
    labels: ['certs'],
    authentication_policy: 'bootstrap',
    enroll_authentication: { methods: ['client_certificate'] },
  };
  /** A profile forwarding to the fuzz upstream's `upstreamLabel` (see scripts/fuzz/upstream.ts). */
  const est = (upstreamLabel: string, profileLabel: string): Record<string, unknown> => ({
    ...rules,
    labels: [profileLabel],
    upstream: 'est',
    csrattrs_source: 'upstream',
    est: {
      url: `${upstreamUrl}/.well-known/est/${upstreamLabel}`,
      ra_certificate: join(dir, 'pki/server.crt'),
      ra_key: join(dir, 'pki/server.key'),
      trust_anchors: [join(dir, 'pki/root-ca.crt')],
      // An upstream that hangs is given up after a second: the case then answers 202 (queued).
      timeout_ms: upstreamLabel === 'flaky' ? 1000 : 5000,
      ...(upstreamLabel === 'cacerts' ? { cacerts_refresh_s: 1 } : {}),
      // The server certificate stands in for the RA's: never due, and never to be rewritten by a renewal.
      ra_renewal: { enabled: false },
    },
  });
  config.profiles.up = est('up', 'up');
  config.profiles['up-cacerts'] = est('cacerts', 'up-cacerts');
  for (let n = 0; n < FLAKY_PROFILES; n++) config.profiles[`flaky-${n}`] = est('flaky', `flaky-${n}`);
  return YAML.stringify(config);
}

async function main(): Promise<void> {
  // The state directory on tmpfs when there is one: every request is a durable SQLite commit (synchronous = FULL), and
  // the fuzzer is about what est-ra answers, not the disk's fsync latency (npm run bench measures that).
  const dir = mkdtempSync(join(process.env.FUZZ_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'est-ra-fuzz-'));
  let unhandled = 0;
  process.on('unhandledRejection', (reason) => {
    unhandled++;
    console.error(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
  });
  const random = prng(SEED);
  try {
    const init = await initStateDir({ ...DEMO_INIT, stateDir: dir, port: 0, host: '127.0.0.1', serverNames: [], now: new Date() });
    const demoPasscode = init.demoPasscode!;
    const serverCert = readFileSync(join(dir, 'pki/server.crt'), 'utf8');
    const serverKey = readFileSync(join(dir, 'pki/server.key'), 'utf8');
    const upstream = await startFuzzUpstream({ cert: serverCert, key: serverKey, random: prng(SEED + 7) });
    const bootstrapKey = newKey();
    const bootstrap = { subject: name('fz bootstrap CA'), key: bootstrapKey.privateKey };
    writeFileSync(join(dir, 'bootstrap-ca.crt'), toPem(caCertificate('fz bootstrap CA', bootstrapKey)));
    writeFileSync(init.configFile, fuzzConfig(readFileSync(init.configFile, 'utf8'), dir, upstream.url));
    const config = parseConfig(readFileSync(init.configFile, 'utf8'), init.configFile);
    // FUZZ_LOG=warn (or info) prints est-ra's own log lines on stderr, to see why a case got its answer.
    const logger = process.env.FUZZ_LOG
      ? winston.createLogger({ level: process.env.FUZZ_LOG, transports: [new winston.transports.Stream({ stream: process.stderr })] })
      : winston.createLogger({ level: 'error', silent: true });
    const server = await startServer(config, { port: 0, logger });
    const openssl = (...args: string[]): Buffer => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
    const seeds = [
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=fuzz-p256', '-addext', 'subjectAltName=DNS:fuzz.line1.local'],
      ['-newkey', 'rsa:2048', '-subj', '/CN=fuzz-rsa/O=Plant'],
      ['-newkey', 'ed25519', '-subj', '/CN=fuzz-ed'],
    ].map((args) => openssl('req', '-new', ...args, '-nodes', '-keyout', join(dir, 'k.pem'), '-outform', 'DER'));
    const ca = readFileSync(init.rootCaFile);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca, timeout: 4000 });
    const basic = `Basic ${Buffer.from(`:${demoPasscode}`).toString('base64')}`;

    // Certificates est-ra really issued, for renewals that can succeed.
    const issued: { der: Buffer; key: KeyPair }[] = [];
    for (let i = 0; i < 4; i++) {
      const key = newKey();
      const body = Buffer.from(csr(name(`fz-renew-${i}`), key).toString('base64'));
      const der = await fetchCertificate(agent, server.port, basic, body);
      issued.push({ der, key });
    }
    const pool = makeClientCertPool(prng(SEED + 3), {
      size: CLIENT_CERT_POOL,
      serverCa: ca,
      bootstrap,
      localIssuing: {
        subject: subjectAndKey(new X509Certificate(readFileSync(join(dir, 'pki/issuing-ca.crt'))).raw, 'certificate').subject,
        key: createPrivateKey(readFileSync(join(dir, 'pki/issuing-ca.key'))),
      },
      issued,
    });
    const upstreamKeys = Array.from({ length: 8 }, () => newKey());

    const makeCase = (caseRandom: Random, index: number): FuzzCase => {
      const kind = weighted(caseRandom, KIND_WEIGHTS);
      switch (kind) {
        case 'passcode': {
          const plain = passcodeCase(caseRandom, seeds, demoPasscode);
          return { ...plain, allowed: (status) => status < 500 || (status === 501 && /\/(serverkeygen|fullcmc)$/.test(plain.path)) };
        }
        case 'multipart': {
          const multipart = multipartCase(caseRandom, pick(caseRandom, seeds));
          return {
            kind: `multipart ${multipart.allowed.includes(415) ? 'declared' : 'undeclared'}`,
            method: 'POST',
            path: '/.well-known/est/simpleenroll',
            headers: { Authorization: basic, 'Content-Type': multipart.contentType },
            body: multipart.body,
            allowed: only(...multipart.allowed),
            detail: multipart.shape,
          };
        }
        case 'client certificate': {
          // From a window of 16 entries that moves every 400 cases: its agents' connections are reused (a TLS handshake
          // costs more than the case), and the run still goes through the whole pool.
          const window = Math.floor(Math.max(0, index) / 400) * 16;
          const entry: ClientCertEntry = pool.entries[(window + int(caseRandom, 16)) % pool.entries.length]!;
          return {
            kind: `client certificate ${entry.kind}`,
            method: 'POST',
            path: entry.path,
            headers: { 'Content-Type': 'application/pkcs10' },
            body: entry.body,
            agent: entry.agent,
            // 202: the same CSR sent by two cases at once (the second finds the first still in progress, RFC 7030 §4.2.3).
            allowed: only(200, 202, 400, 403),
            detail: `${entry.mutations.join(', ')}\n${entry.pem}`,
          };
        }
        case 'upstream enroll': {
          const answer = weighted(
            caseRandom,
            ANSWERS.map((a, i) => [a.flaky ? 1 : 3, i] as const),
          );
          const kindOf = ANSWERS[answer]!;
          const label = kindOf.flaky ? `flaky-${int(caseRandom, FLAKY_PROFILES)}` : 'up';
          const body = Buffer.from(`${csr(name(`fz${answer}-c${index < 0 ? `w${-index}` : index}`), pick(caseRandom, upstreamKeys)).toString('base64')}\n`);
          return {
            kind: `upstream ${kindOf.name}`,
            method: 'POST',
            path: `/.well-known/est/${label}/simpleenroll`,
            headers: { Authorization: basic, 'Content-Type': 'application/pkcs10' },
            body,
            allowed: only(...kindOf.allowed),
          };
        }
        case 'upstream csrattrs':
          // An upstream that cannot answer leaves the profile's own attributes (200/204); one that answers something that is not a DER CsrAttrs is 502 (docs/errors.md).
          return { kind: 'upstream csrattrs', method: 'GET', path: '/.well-known/est/up/csrattrs', headers: {}, allowed: only(200, 204, 502) };
        case 'upstream cacerts':
          return { kind: 'upstream cacerts', method: 'GET', path: '/.well-known/est/up-cacerts/cacerts', headers: {}, allowed: only(200, 503) };
      }
    };

    // Warm up (JIT, caches, the V8 heap), then measure memory after a full GC, before and after the run: growth that
    // survives a GC is what a leak would look like.
    for (let i = 0; i < 2000; i++) await send(agent, server.port, makeCase(prng(SEED + 1_000_000 + i), -1 - i));
    const before = settledMemory();
    const byKind = new Map<string, Map<string, number>>();
    const findings: string[] = [];
    let findingCount = 0;
    let tlsRefused = 0;
    /** Milliseconds spent waiting for answers, per kind: where the run's time goes. */
    const busy = new Map<string, number>();
    /** RSS (no GC) at every tenth of the run: a leak climbs steadily, the allocator's high-water mark levels off. */
    const rssDuring: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < CASES) {
          const index = next++;
          if (index % Math.ceil(CASES / 10) === 0) rssDuring.push(Math.round(process.memoryUsage().rss / 1048576));
          const fuzz = makeCase(random, index);
          const sent = performance.now();
          const outcome = await send(agent, server.port, fuzz);
          busy.set(fuzz.kind, (busy.get(fuzz.kind) ?? 0) + performance.now() - sent);
          const key = 'status' in outcome ? String(outcome.status) : 'refused' in outcome ? 'tls-refused' : 'dropped';
          const counts = byKind.get(fuzz.kind) ?? new Map<string, number>();
          byKind.set(fuzz.kind, counts.set(key, (counts.get(key) ?? 0) + 1));
          if ('refused' in outcome) tlsRefused++;
          const bad = 'dropped' in outcome || ('status' in outcome && !fuzz.allowed(outcome.status));
          if (!bad) continue;
          findingCount++;
          if (findings.length < 20)
            findings.push(
              `seed ${SEED} case ${index} (${fuzz.kind}): ${'status' in outcome ? outcome.status : JSON.stringify(outcome)} ${fuzz.method} ${fuzz.path} ${JSON.stringify(fuzz.headers)} ${fuzz.body?.toString('hex').slice(0, 3000) ?? ''}${fuzz.detail ? `\n  ${fuzz.detail.slice(0, 4000)}` : ''}`,
            );
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    agent.destroy();
    pool.destroy();
    const after = settledMemory();
    await server.close();
    await upstream.close();
    const upstreamServed = [...upstream.served.values()].reduce((a, b) => a + b, 0);
    console.log(
      JSON.stringify(
        {
          cases: CASES,
          seed: SEED,
          seconds: Math.round(seconds),
          kinds: Object.fromEntries([...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([kind, counts]) => [kind, Object.fromEntries([...counts].sort())])),
          busy_seconds: Object.fromEntries([...busy].sort(([, a], [, b]) => b - a).map(([kind, ms]) => [kind, Math.round(ms / 100) / 10])),
          tls_refused: tlsRefused,
          tls_handshakes: handshakes,
          client_certificates: { pool: pool.entries.length, unloadable: pool.unloadable },
          upstream_served: { total: upstreamServed, ...Object.fromEntries([...upstream.served].sort(([a], [b]) => a.localeCompare(b))) },
          unhandled_rejections: unhandled,
          memory_mb: { before, after, rss_during: rssDuring },
        },
        null,
        1,
      ),
    );
    for (const finding of findings) console.log(`finding: ${finding}`);
    const middle = rssDuring[Math.floor(rssDuring.length / 2)] ?? before.rss;
    const failed = findingCount > 0 || unhandled > 0 || after.rss - middle > RSS_SECOND_HALF_GROWTH_MAX_MB;
    console.log(
      `fuzz: ${CASES} cases in ${Math.round(seconds)} s, ${findingCount} findings (5xx, a status outside the case's set, or dropped), ${tlsRefused} tls-refused, ${unhandled} unhandled rejections, upstream served ${upstreamServed}, RSS ${before.rss} → ${middle} (middle) → ${after.rss} MB${failed ? ' FAILED' : ''}`,
    );
    process.exitCode = failed ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** simpleenroll with the demo passcode; the issued certificate's DER. */
function fetchCertificate(agent: Agent, port: number, authorization: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        agent,
        method: 'POST',
        path: '/.well-known/est/demo/simpleenroll',
        headers: { Authorization: authorization, 'Content-Type': 'application/pkcs10' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`enrollment for the renewal pool: ${res.statusCode}`));
          resolve(parseCertsOnly(decodeDerBody(Buffer.concat(chunks)))[0]!);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

await main();
