/**
 * The hostile address of the bench's `hostile` section, run as its own
 * process (child_process.fork from bench-hostile.ts) so that its event loop
 * never delays the legitimate client's callbacks in the bench process: what
 * the legitimate latency shows is est-ra's, not the driver's own queueing.
 *
 * From one source address it keeps more connections open than est-ra's
 * per-address cap (max_connections_per_address) allows, and uses them all:
 *
 * - holders: plain TCP connections that never start TLS; est-ra closes them
 *   at its handshake deadline, or at once when they are over the cap, and each
 *   is opened again as soon as it is closed;
 * - keep-alive flooders: TLS connections reused for one refused request
 *   after the other (wrong passcode to /simpleenroll, no credential to
 *   /simplereenroll, a garbage body with a wrong passcode), as fast as est-ra
 *   answers, whatever it answers (401, then 429 with Retry-After, which the
 *   flooder ignores);
 * - handshake flooders: the same requests, each on a new connection with a
 *   full TLS handshake, which costs est-ra the most.
 *
 * The parent sends 'report' (answered with the counts so far) and 'stop'
 * (answered with the final counts, then the process exits).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface AttackerOptions {
  readonly port: number;
  readonly caFile: string;
  readonly localAddress: string;
  readonly holders: number;
  readonly keepAliveFlooders: number;
  readonly handshakeFlooders: number;
  /** A CSR the attacker sends with a wrong passcode (est-ra refuses it before looking at it). */
  readonly csrBase64: string;
}

export interface AttackerCounts {
  /** Answers by HTTP status; "0" is a request that got no answer (refused or reset connection). */
  readonly answers: Record<string, number>;
  readonly requests: number;
  /** TCP connections est-ra closed before any TLS: within REFUSED_WITHIN_MS of opening (over the cap) ... */
  readonly connections_refused: number;
  /** ... or later (the handshake deadline). */
  readonly connections_closed_at_deadline: number;
  readonly connections_opened: number;
  readonly retry_after_seen: number;
}

/** A plain TCP connection closed this soon after it opened was refused by the connection guard, not timed out. */
const REFUSED_WITHIN_MS = 500;

const options = JSON.parse(process.argv[2] ?? '{}') as AttackerOptions;
const answers: Record<string, number> = {};
let requests = 0;
let connectionsRefused = 0;
let connectionsClosedAtDeadline = 0;
let connectionsOpened = 0;
let retryAfterSeen = 0;
let stopping = false;

const counts = (): AttackerCounts => ({
  answers: { ...answers },
  requests,
  connections_refused: connectionsRefused,
  connections_closed_at_deadline: connectionsClosedAtDeadline,
  connections_opened: connectionsOpened,
  retry_after_seen: retryAfterSeen,
});

const held = new Set<ReturnType<typeof connect>>();

/** One plain TCP connection held open until est-ra closes it, then the next one, until stopped. */
function hold(): void {
  if (stopping) return;
  const openedAt = performance.now();
  let connected = false;
  const socket = connect({ host: '127.0.0.1', port: options.port, localAddress: options.localAddress }, () => {
    connected = true;
    connectionsOpened++;
  });
  socket.on('error', () => undefined);
  socket.once('close', () => {
    if (connected && performance.now() - openedAt < REFUSED_WITHIN_MS) connectionsRefused++;
    else if (connected) connectionsClosedAtDeadline++;
    setImmediate(hold);
  });
  held.add(socket);
  socket.once('close', () => held.delete(socket));
}
const wrongPasscode = `Basic ${Buffer.from(`:${randomBytes(12).toString('base64url')}`).toString('base64')}`;

/**
 * The refused requests, taken in turn. A flood of one kind alone:
 * BENCH_ATTACK_ONLY=<index> (3, requests without credentials, is what an
 * address past its refusal budget could once send without end: the challenge
 * was not counted).
 */
const allKinds = [
  { path: '/.well-known/est/simpleenroll', authorization: wrongPasscode, body: () => options.csrBase64 },
  { path: '/.well-known/est/simplereenroll', authorization: undefined, body: () => options.csrBase64 },
  { path: '/.well-known/est/simpleenroll', authorization: wrongPasscode, body: () => randomBytes(64 + Math.floor(Math.random() * 2048)).toString('base64') },
  { path: '/.well-known/est/simpleenroll', authorization: undefined, body: () => options.csrBase64 },
];
const only = process.env.BENCH_ATTACK_ONLY;
const kinds = only === undefined ? allKinds : [allKinds[Number(only)]!];

function refusedRequest(agent: Agent, n: number, close: boolean): Promise<void> {
  const kind = kinds[n % kinds.length]!;
  const body = kind.body();
  return new Promise((done) => {
    const answered = (status: string): void => {
      requests++;
      answers[status] = (answers[status] ?? 0) + 1;
      done();
    };
    const req = request(
      {
        host: '127.0.0.1',
        port: options.port,
        localAddress: options.localAddress,
        path: kind.path,
        method: 'POST',
        agent,
        headers: {
          'Content-Type': 'application/pkcs10',
          'Content-Length': Buffer.byteLength(body),
          ...(kind.authorization !== undefined ? { Authorization: kind.authorization } : {}),
          ...(close ? { Connection: 'close' } : {}),
        },
      },
      (res) => {
        if (res.headers['retry-after'] !== undefined) retryAfterSeen++;
        res.resume();
        res.on('end', () => answered(String(res.statusCode ?? 0)));
        res.on('error', () => answered('0'));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => answered('0'));
    req.end(body);
  });
}

async function flood(agent: Agent, close: boolean): Promise<void> {
  for (let n = Math.floor(Math.random() * kinds.length); !stopping; n++) {
    await refusedRequest(agent, n, close);
    // A refused connection fails at once: yield so the other loops (and the IPC channel) are not starved.
    await new Promise((next) => setImmediate(next));
  }
}

const ca = readFileSync(options.caFile);
const keepAlive = new Agent({ keepAlive: true, maxSockets: options.keepAliveFlooders, ca });
const handshakes = new Agent({ keepAlive: false, maxCachedSessions: 0, ca });
for (let i = 0; i < options.holders; i++) hold();
const floods = [
  ...Array.from({ length: options.keepAliveFlooders }, () => flood(keepAlive, false)),
  ...Array.from({ length: options.handshakeFlooders }, () => flood(handshakes, true)),
];

process.on('message', (message: string) => {
  if (message === 'report') process.send?.(counts());
  if (message !== 'stop') return;
  stopping = true;
  for (const socket of held) socket.destroy();
  void Promise.all(floods).then(() => {
    keepAlive.destroy();
    process.send?.(counts(), () => process.exit(0));
  });
});
