/**
 * The bench's `hostile` section (issue #10), on a fresh est-ra with the
 * `limits:` that `init` writes, as a plant runs it:
 *
 * 1. c256: 256 devices enrolling at once, from eight source addresses
 *    (127.0.0.1 to 127.0.0.8, 32 each: a plant's devices do not share one
 *    address, and 256 from one would be over max_connections_per_address, 64),
 *    with zero errors.
 * 2. quiet: a legitimate client from 127.0.0.1 at c8, new TLS handshake and
 *    fresh CSR per request.
 * 3. flood only: the attacker (scripts/bench-attacker.ts, its own process)
 *    from 127.0.0.2 holds its connection cap, keeps opening more, and floods
 *    refused requests; what the store grows by meanwhile, per minute.
 * 4. under flood: the same legitimate load as 2, the attacker still going;
 *    its latency against the quiet figure.
 */
import Database from 'better-sqlite3';
import { execFile, fork } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import type { AttackerCounts, AttackerOptions } from './bench-attacker.js';
import {
  checkOneEnrollment,
  CLI,
  cpuMs,
  medianRound,
  progress,
  round,
  runLevel,
  sampleRss,
  sleep,
  startEstRa,
  stopEstRa,
  targetOf,
  type EstRa,
  type LevelResult,
  type RoundResult,
} from './bench-lib.js';

const ATTACKER = resolve(fileURLToPath(import.meta.url), '../bench-attacker.js');
const ATTACKER_ADDRESS = '127.0.0.2';
/** Plain TCP connections the attacker holds without starting TLS ... */
const HOLDERS = 16;
/** ... and more of them than its cap leaves room for: these are refused, and opened again at once. */
const OVER_CAP = 16;
/** Flooders opening a new TLS connection per request; the rest of the cap floods over keep-alive connections. */
const HANDSHAKE_FLOODERS = 8;
/**
 * The attacker runs at the lowest CPU priority: on a plant it is another
 * device with its own CPU, while here its ~0.5 core (mostly reopening refused
 * connections) would come off the two cores est-ra and the legitimate client
 * share, and the latency would show the bench's crowding, not est-ra. It
 * still takes all the CPU they leave; rates_per_s says how hard it pushed in
 * each phase. BENCH_ATTACKER_NICE=0 gives it an equal share.
 */
const ATTACKER_NICE = Number(process.env.BENCH_ATTACKER_NICE ?? 19);
const LEGIT_CONCURRENCY = 8;
const LEGIT_SECONDS = 10;
const FLOOD_ONLY_SECONDS = 15;
const C256_CONCURRENCY = 256;
const C256_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 1}`);
const C256_ROUNDS = 3;
const C256_ROUND_SECONDS = 5;
const WARMUP_SECONDS = 2;

export const HOSTILE_TARGETS = {
  hostile_p50_ratio_max: 2,
  hostile_p99_ratio_max: 2,
  hostile_store_growth_kb_per_min_max: 300,
  c256_errors_max: 0,
} as const;

export interface C256Result extends RoundResult {
  readonly concurrency: number;
  readonly source_addresses: number;
  /** Errors over the warm-up and every round: any answer but 200, or none. */
  readonly errors_all_rounds: number;
  readonly peak_rss_mb: number;
}

interface StoreReading {
  /** est-ra.db after a checkpoint folded the WAL into it: what the disk keeps. */
  readonly db_bytes: number;
  /** The WAL before that checkpoint: what was written since the last one (a page per change, so more than the growth). */
  readonly wal_bytes: number;
  readonly shm_bytes: number;
  /** `est-ra store stats`, as an operator reads it. */
  readonly stats: string;
}

export interface HostileResult {
  readonly limits: Record<string, number>;
  readonly attacker: {
    readonly address: string;
    readonly holders: number;
    readonly over_cap: number;
    readonly keep_alive_flooders: number;
    readonly handshake_flooders: number;
    /** Its own process's CPU time per second of flood, on the cores est-ra and the legitimate client share. */
    readonly cpu_ms_per_s: number;
    readonly nice: number;
    readonly seconds: number;
    readonly counts: AttackerCounts;
    /** est-ra's CPU time per second while the attacker alone ran: what the flood costs it. */
    readonly est_ra_cpu_ms_per_s_flood_only: number;
    /** The attack's intensity alone and beside the legitimate load (lower there: see ATTACKER_NICE). */
    readonly rates_per_s: { readonly flood_only: AttackRates; readonly under_flood: AttackRates };
  };
  readonly legit: {
    readonly address: string;
    readonly concurrency: number;
    readonly seconds: number;
    readonly quiet: LevelResult;
    readonly under_flood: LevelResult;
    readonly p50_ratio: number;
    readonly p99_ratio: number;
  };
  readonly store: {
    readonly flood_seconds: number;
    readonly attacker_requests: number;
    readonly before: StoreReading;
    readonly after: StoreReading;
    readonly growth_kb_per_min: number;
    readonly wal_written_kb_per_min: number;
    readonly log_kb_per_min: number;
  };
}

export interface HostileResults {
  readonly c256: C256Result;
  readonly hostile: HostileResult;
}

export function hostileTargetsMet(results: HostileResults): Record<string, boolean> {
  const { legit, store } = results.hostile;
  return {
    hostile_p50_ratio: legit.p50_ratio <= HOSTILE_TARGETS.hostile_p50_ratio_max,
    hostile_p99_ratio: legit.p99_ratio <= HOSTILE_TARGETS.hostile_p99_ratio_max,
    hostile_store_growth_kb_per_min: store.growth_kb_per_min <= HOSTILE_TARGETS.hostile_store_growth_kb_per_min_max,
    c256_errors: results.c256.errors_all_rounds <= HOSTILE_TARGETS.c256_errors_max,
  };
}

export async function benchHostile(root: string, nextCsr: () => string): Promise<HostileResults> {
  const stateDir = join(root, 'hostile');
  mkdirSync(stateDir);
  progress(`starting est-ra in ${stateDir} with init's limits`);
  const estRa = await startEstRa(stateDir);
  try {
    const c256 = await measureC256(estRa, nextCsr);
    const hostile = await measureFlood(estRa, nextCsr);
    return { c256, hostile };
  } finally {
    await stopEstRa(estRa.child);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** 256 workers, worker i connecting from C256_ADDRESSES[i mod 8]: the median of C256_ROUNDS rounds. */
async function measureC256(estRa: EstRa, nextCsr: () => string): Promise<C256Result> {
  const target = { ...targetOf(estRa), localAddresses: C256_ADDRESSES };
  const rss = sampleRss(estRa.pid);
  await checkOneEnrollment(target, nextCsr());
  progress(`c${C256_CONCURRENCY} warm-up: ${WARMUP_SECONDS} s from ${C256_ADDRESSES.length} addresses`);
  const warmUp = await runLevel(target, estRa.pid, nextCsr, C256_CONCURRENCY, WARMUP_SECONDS);
  const rounds: LevelResult[] = [];
  for (let n = 1; n <= C256_ROUNDS; n++) {
    progress(`c${C256_CONCURRENCY} round ${n}/${C256_ROUNDS}: ${C256_ROUND_SECONDS} s`);
    rounds.push(await runLevel(target, estRa.pid, nextCsr, C256_CONCURRENCY, C256_ROUND_SECONDS));
    progress(`c${C256_CONCURRENCY}: ${JSON.stringify(rounds.at(-1))}`);
  }
  return {
    concurrency: C256_CONCURRENCY,
    source_addresses: C256_ADDRESSES.length,
    ...medianRound(rounds),
    errors_all_rounds: [warmUp, ...rounds].reduce((sum, r) => sum + r.errors, 0),
    peak_rss_mb: round(rss.stop(), 1),
  };
}

async function measureFlood(estRa: EstRa, nextCsr: () => string): Promise<HostileResult> {
  const limits = readLimits(estRa.stateDir);
  const cap = limits['max_connections_per_address'] ?? 64;
  const target = targetOf(estRa);
  progress(`quiet: ${LEGIT_SECONDS} s at c${LEGIT_CONCURRENCY} from 127.0.0.1`);
  const quiet = await runLevel(target, estRa.pid, nextCsr, LEGIT_CONCURRENCY, LEGIT_SECONDS);
  progress(`quiet: ${JSON.stringify(quiet)}`);

  const before = await readStore(estRa);
  const logBefore = statSync(estRa.logFile).size;
  const attackerOptions: AttackerOptions = {
    port: estRa.port,
    caFile: join(estRa.stateDir, 'pki', 'root-ca.crt'),
    localAddress: ATTACKER_ADDRESS,
    holders: HOLDERS + OVER_CAP,
    keepAliveFlooders: cap - HOLDERS - HANDSHAKE_FLOODERS,
    handshakeFlooders: HANDSHAKE_FLOODERS,
    csrBase64: nextCsr(),
  };
  progress(`flood only: ${FLOOD_ONLY_SECONDS} s, the attacker from ${ATTACKER_ADDRESS}`);
  const attacker = fork(ATTACKER, [JSON.stringify(attackerOptions)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const attackerPid = attacker.pid!;
  setPriority(attackerPid, ATTACKER_NICE);
  const ask = (message: 'report' | 'stop'): Promise<AttackerCounts> =>
    new Promise((done, fail) => {
      attacker.once('message', (counts) => done(counts as AttackerCounts));
      attacker.once('exit', (code) => fail(new Error(`the attacker exited with code ${code}`)));
      attacker.send(message);
    });
  try {
    const started = performance.now();
    const estRaCpuBefore = cpuMs(estRa.pid);
    await sleep(FLOOD_ONLY_SECONDS * 1000);
    const floodOnly = await ask('report');
    const floodSeconds = (performance.now() - started) / 1000;
    const estRaCpuMsPerS = (cpuMs(estRa.pid) - estRaCpuBefore) / floodSeconds;
    const after = await readStore(estRa);
    const logAfter = statSync(estRa.logFile).size;
    progress(`flood only: ${JSON.stringify(floodOnly)}`);

    progress(`under flood: ${LEGIT_SECONDS} s at c${LEGIT_CONCURRENCY} from 127.0.0.1`);
    const underFlood = await runLevel(target, estRa.pid, nextCsr, LEGIT_CONCURRENCY, LEGIT_SECONDS);
    progress(`under flood: ${JSON.stringify(underFlood)}`);
    const attackerCpuMs = cpuMs(attackerPid);
    const attackSeconds = (performance.now() - started) / 1000;
    const legitSeconds = attackSeconds - floodSeconds;
    const counts = await ask('stop');
    progress(`attacker: ${JSON.stringify(counts)}`);

    const perMinute = (bytes: number): number => round((bytes / 1024 / floodSeconds) * 60, 1);
    return {
      limits,
      attacker: {
        address: ATTACKER_ADDRESS,
        holders: HOLDERS,
        over_cap: OVER_CAP,
        keep_alive_flooders: attackerOptions.keepAliveFlooders,
        handshake_flooders: HANDSHAKE_FLOODERS,
        nice: ATTACKER_NICE,
        cpu_ms_per_s: round(attackerCpuMs / attackSeconds, 0),
        seconds: round(attackSeconds, 1),
        counts,
        est_ra_cpu_ms_per_s_flood_only: round(estRaCpuMsPerS, 0),
        rates_per_s: {
          flood_only: attackRates(floodOnly, floodSeconds),
          under_flood: attackRates(subtract(counts, floodOnly), legitSeconds),
        },
      },
      legit: {
        address: '127.0.0.1',
        concurrency: LEGIT_CONCURRENCY,
        seconds: LEGIT_SECONDS,
        quiet,
        under_flood: underFlood,
        p50_ratio: round(underFlood.p50_ms / quiet.p50_ms, 2),
        p99_ratio: round(underFlood.p99_ms / quiet.p99_ms, 2),
      },
      store: {
        flood_seconds: round(floodSeconds, 1),
        attacker_requests: floodOnly.requests,
        before,
        after,
        growth_kb_per_min: perMinute(after.db_bytes + after.shm_bytes - before.db_bytes - before.shm_bytes),
        wal_written_kb_per_min: perMinute(after.wal_bytes),
        log_kb_per_min: perMinute(logAfter - logBefore),
      },
    };
  } finally {
    if (attacker.exitCode === null) attacker.kill();
  }
}

interface AttackRates {
  readonly requests: number;
  readonly answered_429: number;
  readonly connections_refused: number;
}

function attackRates(counts: AttackerCounts, seconds: number): AttackRates {
  return {
    requests: round(counts.requests / seconds, 0),
    answered_429: round((counts.answers['429'] ?? 0) / seconds, 0),
    connections_refused: round(counts.connections_refused / seconds, 0),
  };
}

function subtract(later: AttackerCounts, earlier: AttackerCounts): AttackerCounts {
  return {
    answers: { '429': (later.answers['429'] ?? 0) - (earlier.answers['429'] ?? 0) },
    requests: later.requests - earlier.requests,
    connections_refused: later.connections_refused - earlier.connections_refused,
    connections_closed_at_deadline: later.connections_closed_at_deadline - earlier.connections_closed_at_deadline,
    connections_opened: later.connections_opened - earlier.connections_opened,
    retry_after_seen: later.retry_after_seen - earlier.retry_after_seen,
  };
}

/** The `limits:` section as `init` wrote it. */
function readLimits(stateDir: string): Record<string, number> {
  const config = parseYaml(readFileSync(join(stateDir, 'config.yaml'), 'utf8')) as { limits?: Record<string, number> };
  return config.limits ?? {};
}

/**
 * The store's files, with the WAL folded into est-ra.db by a checkpoint
 * from a second connection (SQLite allows it beside est-ra's own): the WAL
 * is reused from its start after a checkpoint without shrinking, so its
 * size alone says nothing; truncated here, its size at the next reading is
 * what was written in between.
 */
async function readStore(estRa: EstRa): Promise<StoreReading> {
  const path = join(estRa.stateDir, 'est-ra.db');
  const size = (file: string): number => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  const walBytes = size(`${path}-wal`);
  const db = new Database(path, { fileMustExist: true, timeout: 5_000 });
  try {
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    if (result?.busy) throw new Error('the WAL checkpoint found est-ra busy');
  } finally {
    db.close();
  }
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'store', 'stats', '--config', join(estRa.stateDir, 'config.yaml')]);
  return { db_bytes: size(path), wal_bytes: walBytes, shm_bytes: size(`${path}-shm`), stats: stdout.trim().split('\n').slice(1).join(' · ') };
}
