/**
 * The bench's `pqc` section (issue #12): what checking one post-quantum
 * CSR costs est-ra, in process, against a P-256 CSR as the yardstick. Each
 * CSR is parsed and its proof of possession verified by the production
 * code (parseAndVerifyCsr); ML-DSA and SLH-DSA are verified by
 * @noble/post-quantum in JavaScript on a worker thread: CPU per CSR counts
 * every thread, event_loop_ms_per_csr what the main thread spent. The CSRs are
 * made before the timed part (SLH-DSA-SHA2-128s signs in seconds).
 * SLH-DSA-SHAKE-256f, the slowest set to verify, bounds how long one PQC
 * CSR holds the event loop.
 *
 *   BENCH_SECTIONS=pqc npm run bench
 */
import { performance } from 'node:perf_hooks';
import { parseAndVerifyCsr } from '../src/pki/csr.js';
import { pqcCsr, pqcKeyPair, type PqcSet } from '../test/helpers/pqc-csr.js';
import { makeDeviceKeys, progress, round, signCsr } from './bench-lib.js';

/** Distinct CSRs per type: verification of one repeated CSR would measure nothing else. */
const CSRS_PER_TYPE = 8;
/** Checks per type, cycling over its CSRs, after WARMUP ones. */
const ITERATIONS: Readonly<Record<string, number>> = { p_256: 2000, 'MLDSA-65': 400, 'SLHDSA-SHA2-128s': 200, 'SLHDSA-SHAKE-256f': 40 };
const WARMUP = 20;
/** The two the issue asks about, and the slowest set to verify: the longest a PQC CSR holds the event loop. */
const PQC_SETS: readonly PqcSet[] = ['MLDSA-65', 'SLHDSA-SHA2-128s', 'SLHDSA-SHAKE-256f'];

export interface PqcCost {
  readonly csrs: number;
  readonly csr_bytes: number;
  /** CPU of this process (all threads) per parse + verify. */
  readonly cpu_ms_per_csr: number;
  /** Elapsed time per parse + verify, one at a time. */
  readonly wall_ms_per_csr: number;
  /** Time the main thread was busy per CSR (event loop utilization): PQC signatures are verified on a worker thread. */
  readonly event_loop_ms_per_csr: number;
}

export async function benchPqc(): Promise<Record<string, PqcCost>> {
  const samples: Record<string, Buffer[]> = { p_256: makeDeviceKeys(CSRS_PER_TYPE).map(signCsr) };
  for (const set of PQC_SETS) {
    progress(`pqc: making ${CSRS_PER_TYPE} ${set} CSRs`);
    samples[set] = Array.from({ length: CSRS_PER_TYPE }, (_, i) => pqcCsr(pqcKeyPair(set), { subject: `CN=bench-${set}-${i}` }));
  }
  const results: Record<string, PqcCost> = {};
  for (const [type, csrs] of Object.entries(samples)) {
    const iterations = ITERATIONS[type]!;
    for (let i = 0; i < WARMUP; i++) await parseAndVerifyCsr(csrs[i % csrs.length]!);
    progress(`pqc: ${iterations} checks of ${type} CSRs`);
    const cpu = process.cpuUsage();
    const loop = performance.eventLoopUtilization();
    const start = performance.now();
    for (let i = 0; i < iterations; i++) {
      const csr = await parseAndVerifyCsr(csrs[i % csrs.length]!);
      if (csr.keyType !== type) throw new Error(`pqc: a ${type} CSR was read as ${csr.keyType}`);
    }
    const wall = performance.now() - start;
    const used = process.cpuUsage(cpu);
    const busy = performance.eventLoopUtilization(loop).active;
    results[type] = {
      csrs: csrs.length,
      csr_bytes: csrs[0]!.length,
      cpu_ms_per_csr: round((used.user + used.system) / 1000 / iterations, 3),
      wall_ms_per_csr: round(wall / iterations, 3),
      event_loop_ms_per_csr: round(busy / iterations, 3),
    };
  }
  return results;
}
