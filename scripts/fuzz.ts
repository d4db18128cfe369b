/**
 * `npm run fuzz`: hostile input through the real server over TLS (issue #10).
 * Seeded and bounded: FUZZ_CASES cases (default 100 000), FUZZ_SEED (default
 * 1). Each case is one request made from a seed by a PRNG: a mutated CSR
 * (byte flips, truncations, insertions, length edits) sent as DER, base64 on
 * one line or wrapped, or PEM under several content types with a valid
 * passcode; a hostile Authorization header; a hostile label path; a hostile
 * content type; random bytes. Every answer must be a status below 500 (501
 * for the operations est-ra does not offer), the process must not see an
 * unhandled rejection, and its RSS is printed before and after. Any finding
 * prints the case (seed, index, request) and the run fails; a finding
 * becomes a vector under test/vectors/.
 *
 *   npm run fuzz                          # 100 000 cases
 *   FUZZ_CASES=20000 FUZZ_SEED=7 npm run fuzz
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { DEMO_INIT, initStateDir } from '../src/cli/init.js';
import { parseConfig } from '../src/config/load.js';
import { startServer } from '../src/server.js';

const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? 1);
const CONCURRENCY = 16;
/** RSS may grow this much over the run (V8 heap settling, SQLite cache) before it counts as a leak. */
const RSS_GROWTH_MAX_MB = 96;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface FuzzRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

function mutate(random: () => number, input: Buffer): Buffer {
  const bytes = Buffer.from(input);
  const at = Math.floor(random() * bytes.length);
  switch (Math.floor(random() * 6)) {
    case 0:
      bytes[at] = Math.floor(random() * 256);
      return bytes;
    case 1:
      return bytes.subarray(0, at);
    case 2:
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([Math.floor(random() * 256)]), bytes.subarray(at)]);
    case 3:
      // A length octet: the bytes after a SEQUENCE/SET tag.
      for (let i = at; i < bytes.length - 1; i++)
        if (bytes[i] === 0x30 || bytes[i] === 0x31) {
          bytes[i + 1] = [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff][Math.floor(random() * 6)]!;
          break;
        }
      return bytes;
    case 4:
      return Buffer.concat([bytes, Buffer.alloc(1 + Math.floor(random() * 8), Math.floor(random() * 256))]);
    default:
      bytes[at]! ^= 1 << Math.floor(random() * 8);
      return bytes;
  }
}

function encode(random: () => number, der: Buffer): { body: Buffer; contentType: string } {
  const base64 = der.toString('base64');
  switch (Math.floor(random() * 5)) {
    case 0:
      return { body: der, contentType: 'application/pkcs10' };
    case 1:
      return { body: Buffer.from(base64), contentType: 'application/pkcs10' };
    case 2:
      return { body: Buffer.from(`${(base64.match(/.{1,64}/g) ?? []).join('\r\n')}\r\n`), contentType: 'application/pkcs10' };
    case 3:
      return { body: Buffer.from(`-----BEGIN CERTIFICATE REQUEST-----\n${base64}\n-----END CERTIFICATE REQUEST-----\n`), contentType: 'text/plain' };
    default:
      return { body: Buffer.from(base64.slice(0, Math.floor(random() * base64.length))), contentType: 'application/x-www-form-urlencoded' };
  }
}

const HOSTILE_TEXT = ['', ' ', ':', '::', '\u0000', '%00', '..', '%2e%2e', 'é', '\u202e', 'a'.repeat(4096), '${jndi:ldap://x}', '"', '\\', '/', '%2F'];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function makeCase(random: () => number, seeds: readonly Buffer[], passcode: string): FuzzRequest {
  const basic = `Basic ${Buffer.from(`:${passcode}`).toString('base64')}`;
  switch (Math.floor(random() * 6)) {
    case 0:
    case 1: {
      const { body, contentType } = encode(random, mutate(random, pick(random, seeds)));
      return { method: 'POST', path: '/.well-known/est/simpleenroll', headers: { Authorization: basic, 'Content-Type': contentType }, body };
    }
    case 2: {
      const junk = pick(random, [
        `Basic ${pick(random, HOSTILE_TEXT)}`,
        `Basic ${Buffer.from(pick(random, HOSTILE_TEXT)).toString('base64')}`,
        'Bearer x',
        `Basic ${'A'.repeat(Math.floor(random() * 9000))}`,
        `basic ${Buffer.from(`${pick(random, HOSTILE_TEXT)}:${passcode}`).toString('base64')}`,
      ]);
      const { body } = encode(random, pick(random, seeds));
      return {
        method: 'POST',
        path: '/.well-known/est/simpleenroll',
        headers: { Authorization: junk.replace(/[^\x20-\x7e]/g, '?'), 'Content-Type': 'application/pkcs10' },
        body,
      };
    }
    case 3: {
      const segments = Array.from({ length: Math.floor(random() * 6) }, () => encodeURIComponent(pick(random, HOSTILE_TEXT)).slice(0, 300));
      const operation = pick(random, ['cacerts', 'csrattrs', 'simpleenroll', 'simplereenroll', 'serverkeygen', 'fullcmc', 'x', '']);
      return { method: pick(random, ['GET', 'POST', 'PUT', 'HEAD', 'DELETE']), path: `/.well-known/est/${[...segments, operation].join('/')}`, headers: {} };
    }
    case 4:
      return {
        method: 'POST',
        path: '/.well-known/est/simpleenroll',
        headers: {
          Authorization: basic,
          'Content-Type': pick(random, ['application/json', 'multipart/form-data; boundary=x', 'application/pkcs10; charset=', ';;;', 'text/plain; x=']),
        },
        body: encode(random, pick(random, seeds)).body,
      };
    default: {
      const body = Buffer.alloc(Math.floor(random() * 2048));
      for (let i = 0; i < body.length; i++) body[i] = Math.floor(random() * 256);
      return {
        method: 'POST',
        path: pick(random, ['/.well-known/est/simpleenroll', '/.well-known/est/simplereenroll']),
        headers: { Authorization: basic },
        body,
      };
    }
  }
}

/** RSS in MB after a full garbage collection (node --expose-gc), so heap not yet collected does not count. */
function settledRssMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 1048576;
}

function send(agent: Agent, port: number, ca: Buffer, fuzz: FuzzRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, ca, agent, method: fuzz.method, path: fuzz.path, headers: fuzz.headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(fuzz.body);
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'est-ra-fuzz-'));
  let unhandled = 0;
  process.on('unhandledRejection', () => unhandled++);
  try {
    const init = await initStateDir({ ...DEMO_INIT, stateDir: dir, port: 0, host: '127.0.0.1', serverNames: [], now: new Date() });
    const demoPasscode = init.demoPasscode!;
    // Lift the per-address budgets: the fuzzer is one address and must reach the parsers, not the 429.
    const yaml = readFileSync(init.configFile, 'utf8')
      .replace(/refusals_per_minute_per_address: \d+/, 'refusals_per_minute_per_address: 100000000')
      .replace(/max_connections_per_address: \d+/, 'max_connections_per_address: 1024')
      .replace(/refusals_per_minute_per_passcode: \d+/, 'refusals_per_minute_per_passcode: 100000000');
    const config = parseConfig(yaml, init.configFile);
    const logger = winston.createLogger({ level: 'error', silent: true });
    const server = await startServer(config, { port: 0, logger });
    const openssl = (...args: string[]): Buffer => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
    const seeds = [
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=fuzz-p256', '-addext', 'subjectAltName=DNS:fuzz.line1.local'],
      ['-newkey', 'rsa:2048', '-subj', '/CN=fuzz-rsa/O=Plant'],
      ['-newkey', 'ed25519', '-subj', '/CN=fuzz-ed'],
    ].map((args) => openssl('req', '-new', ...args, '-nodes', '-keyout', join(dir, 'k.pem'), '-outform', 'DER'));
    const ca = readFileSync(init.rootCaFile);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const random = prng(SEED);
    // Warm up (JIT, caches, the V8 heap), then measure RSS after a full GC, before and after the run: growth that
    // survives a GC is what a leak would look like.
    for (let i = 0; i < 2000; i++) await send(agent, server.port, ca, makeCase(prng(SEED + 1_000_000 + i), seeds, demoPasscode)).catch(() => 0);
    const rssBefore = settledRssMb();
    const statuses = new Map<number, number>();
    const findings: string[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < CASES) {
          const index = next++;
          const fuzz = makeCase(random, seeds, demoPasscode);
          const status = await send(agent, server.port, ca, fuzz).catch(() => 0);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          const allowed = status > 0 && (status < 500 || (status === 501 && /\/(serverkeygen|fullcmc)$/.test(fuzz.path)));
          if (!allowed && findings.length < 20)
            findings.push(
              `seed ${SEED} case ${index}: ${status} ${fuzz.method} ${fuzz.path} ${JSON.stringify(fuzz.headers)} ${fuzz.body?.toString('hex') ?? ''}`,
            );
        }
      }),
    );
    agent.destroy();
    const rssAfter = settledRssMb();
    await server.close();
    const seconds = (performance.now() - started) / 1000;
    const bad = [...statuses].filter(([status]) => status === 0 || status >= 500).reduce((n, [, count]) => n + count, 0) - (statuses.get(501) ?? 0);
    console.log(
      JSON.stringify({
        cases: CASES,
        seed: SEED,
        seconds: Math.round(seconds),
        statuses: Object.fromEntries([...statuses].sort(([a], [b]) => a - b)),
        unhandled_rejections: unhandled,
        rss_mb: { before: Math.round(rssBefore), after: Math.round(rssAfter) },
      }),
    );
    for (const finding of findings) console.log(`finding: ${finding.slice(0, 2000)}`);
    const failed = findings.length > 0 || unhandled > 0 || rssAfter - rssBefore > RSS_GROWTH_MAX_MB;
    console.log(
      `fuzz: ${CASES} cases, ${findings.length > 0 ? bad : 0} 5xx or dropped, ${unhandled} unhandled rejections, RSS ${Math.round(rssBefore)} → ${Math.round(rssAfter)} MB${failed ? ' FAILED' : ''}`,
    );
    process.exitCode = failed ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
