/**
 * The bench's `cluster` section (issue #13): what an enrollment costs on
 * each of three setups, at c32 with a new full TLS handshake and a fresh CSR
 * per request (local CA issuing):
 *
 *   sqlite_one_node             one est-ra on the embedded SQLite store (the default);
 *   postgres_one_node           one est-ra on a PostgreSQL the bench starts;
 *   postgres_two_nodes_haproxy  two est-ra nodes on one PostgreSQL of their own,
 *                               behind HAProxy (`mode tcp`, roundrobin, /readyz checks).
 *
 * Each setup gets its own PostgreSQL server (initdb/pg_ctl on a temporary
 * directory and a free port, test/helpers/postgres.ts), so the CPU of the
 * postgres processes of a round (the postmaster and every child of it) is
 * that setup's alone. Rounds alternate between the setups, in a rotating
 * order, so all three see the same neighbours; each reports its median
 * round. CPU per enrollment is given for every process involved: est-ra
 * node(s), PostgreSQL, HAProxy, and the load driver. On one box of 2 shared
 * cores the nodes compete for the same cores, so two nodes cannot be faster
 * than one here; the figure to read is server_cpu_ms_per_enrollment.
 *
 *   BENCH_SECTIONS=cluster npm run bench
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.js';
import {
  checkOneEnrollment,
  cleanUps,
  CLI,
  cpuMs,
  freePort,
  machineCpuMs,
  medianRound,
  processTreeCpuMs,
  progress,
  round,
  rssMb,
  runLevel,
  running,
  serveEstRa,
  sleep,
  startEstRa,
  stopEstRa,
  targetOf,
  type EstRa,
  type LevelResult,
  type Target,
} from './bench-lib.js';

const CONCURRENCY = 32;
/** As the other sections: the median of several rounds, after a warm-up. */
const LEVEL_ROUNDS = 3;
const ROUND_SECONDS = 5;
const WARMUP_SECONDS = 2;
const HAPROXY_START_TIMEOUT_MS = 10_000;

type SetupName = 'sqlite_one_node' | 'postgres_one_node' | 'postgres_two_nodes_haproxy';

/** One setup under load: where the driver connects, and the processes whose CPU it costs. */
interface Setup {
  readonly name: SetupName;
  readonly target: Target;
  readonly nodes: readonly EstRa[];
  readonly postgres?: TestPostgres;
  /** Stops that PostgreSQL; also in cleanUps until then, for a bench that ends early. */
  readonly stopPostgres?: () => Promise<void>;
  readonly haproxy?: ChildProcess;
}

/** CPU time each process of a setup has used so far, in ms. */
interface CpuSnapshot {
  readonly nodes: readonly number[];
  readonly postgres: number;
  readonly haproxy: number;
}

/** CPU per enrollment (ms) of every process of a setup. */
interface CpuPerEnrollment {
  readonly est_ra: number;
  readonly est_ra_by_node: readonly number[];
  /** The postmaster and all its children (backends, WAL writer, checkpointer…), backends that ended included. */
  readonly postgres: number;
  readonly haproxy: number;
  /** est-ra + PostgreSQL + HAProxy: what the setup costs a server per enrollment. */
  readonly server_total: number;
  /** The load driver (TLS client handshakes, CSR signing): the device side, on the same cores. */
  readonly driver: number;
}

type ClusterRound = LevelResult & {
  readonly cpu_ms_per_enrollment: CpuPerEnrollment;
  readonly est_ra_rss_mb_by_node: readonly number[];
  /** Cores kept busy by the servers and the driver together: near the machine's count, the round was CPU-bound. */
  readonly cores_busy: number;
  /** Cores kept busy by every process of the machine: above cores_busy, the neighbours' share of the shared cores. */
  readonly machine_cores_busy: number;
};

export type ClusterSetupResult = ClusterRound & {
  readonly nodes: number;
  readonly store: 'sqlite' | 'postgres';
  readonly load_balancer: 'none' | 'haproxy';
  readonly rounds_enrollments_per_s: number[];
};

export interface ClusterResults {
  readonly concurrency: number;
  readonly rounds: number;
  readonly round_seconds: number;
  readonly cores: number;
  readonly setups: Record<SetupName, ClusterSetupResult>;
  /** server_total CPU per enrollment of each setup against one node on SQLite. */
  readonly server_cpu_vs_sqlite_one_node: Record<SetupName, number>;
}

function cpuSnapshot(setup: Setup): CpuSnapshot {
  return {
    nodes: setup.nodes.map((node) => cpuMs(node.pid)),
    postgres: setup.postgres ? processTreeCpuMs(setup.postgres.postmasterPid()) : 0,
    haproxy: setup.haproxy?.pid !== undefined ? cpuMs(setup.haproxy.pid) : 0,
  };
}

/** One timed round at CONCURRENCY against a setup, with the CPU every one of its processes spent. */
async function measureRound(setup: Setup, nextCsr: () => string, seconds: number): Promise<ClusterRound> {
  const before = cpuSnapshot(setup);
  const machineBefore = machineCpuMs();
  const started = performance.now();
  const level = await runLevel(setup.target, setup.nodes[0]!.pid, nextCsr, CONCURRENCY, seconds);
  const after = cpuSnapshot(setup);
  const machineMs = machineCpuMs() - machineBefore;
  const elapsedMs = performance.now() - started;
  const ok = level.requests - level.errors;
  const per = (ms: number): number => round(ms / Math.max(ok, 1), 2);
  const byNode = after.nodes.map((ms, i) => ms - before.nodes[i]!);
  const estRa = byNode.reduce((a, b) => a + b, 0);
  const postgres = after.postgres - before.postgres;
  const haproxy = after.haproxy - before.haproxy;
  const cpu: CpuPerEnrollment = {
    est_ra: per(estRa),
    est_ra_by_node: byNode.map(per),
    postgres: per(postgres),
    haproxy: per(haproxy),
    server_total: per(estRa + postgres + haproxy),
    driver: level.driver_cpu_ms_per_enrollment,
  };
  const rssByNode = setup.nodes.map((node) => round(rssMb(node.pid), 1));
  return {
    ...level,
    // runLevel saw the first node only; these are the whole setup's.
    est_ra_cpu_ms_per_enrollment: cpu.est_ra,
    est_ra_rss_mb_at_end: round(
      rssByNode.reduce((a, b) => a + b, 0),
      1,
    ),
    est_ra_rss_mb_by_node: rssByNode,
    cpu_ms_per_enrollment: cpu,
    cores_busy: round(((cpu.server_total + cpu.driver) * level.enrollments_per_s) / 1000, 2),
    machine_cores_busy: round(machineMs / elapsedMs, 2),
  };
}

// ------------------------------------------------------------ PostgreSQL nodes

type ConfigJson = Record<string, unknown>;

function editConfigFile(stateDir: string, edit: (config: ConfigJson) => void): void {
  const file = join(stateDir, 'config.yaml');
  const config = parseYaml(readFileSync(file, 'utf8')) as ConfigJson;
  edit(config);
  writeFileSync(file, stringifyYaml(config));
}

/**
 * `count` est-ra nodes on one new PostgreSQL database, as an admin sets them
 * up (docs/cluster.md): one `init` state copied to each node's directory,
 * the store pointed at PostgreSQL, each node with its own name, port and
 * ops listener (/readyz, HAProxy's health check). The passcode is made in
 * the shared store with the admin CLI (init's demo one is in its SQLite file).
 */
async function postgresNodes(
  root: string,
  name: string,
  count: number,
): Promise<{ postgres: TestPostgres; stopPostgres: () => Promise<void>; nodes: EstRa[]; opsPorts: number[] }> {
  progress(`${name}: starting PostgreSQL (initdb, pg_ctl)`);
  const postgres = await startPostgres();
  const stopPostgres = (): Promise<void> => postgres.stop();
  cleanUps.add(stopPostgres);
  const database = await postgres.createDatabase('est_ra');
  const dirs = Array.from({ length: count }, (_, i) => join(root, `${name}-node-${i + 1}`));
  const ports = await Promise.all(dirs.map(() => freePort()));
  const opsPorts = await Promise.all(dirs.map(() => freePort()));
  let passcode = '';
  const configure = (i: number) => (stateDir: string) => {
    editConfigFile(stateDir, (config) => {
      // The first node keeps the port startEstRa gave init; each copy gets its own.
      if (i > 0) config.listen = { ...(config.listen as ConfigJson), port: ports[i] };
      config.store = {
        postgres: { host: postgres.host, port: postgres.port, database, user: postgres.user, password: { file: postgres.passwordFile } },
        retention_days: 90,
      };
      config.cluster = { node_name: `${name}-${i + 1}` };
      config.ops = { listen: { host: '127.0.0.1', port: opsPorts[i] } };
    });
  };
  mkdirSync(dirs[0]!);
  progress(`${name}: starting est-ra in ${dirs[0]!}`);
  const first = await startEstRa(dirs[0]!, async (stateDir) => {
    configure(0)(stateDir);
    for (let i = 1; i < count; i++) {
      cpSync(stateDir, dirs[i]!, { recursive: true });
      configure(i)(dirs[i]!);
    }
    const { stdout } = await promisify(execFile)(process.execPath, [
      CLI,
      'passcodes',
      'create',
      '--policy',
      'demo',
      '--description',
      'bench devices',
      '--json',
      '--config',
      join(stateDir, 'config.yaml'),
    ]);
    passcode = (JSON.parse(stdout.trim().split('\n')[0]!) as { passcode: string }).passcode;
  });
  const nodes = [{ ...first, passcode }];
  for (let i = 1; i < count; i++) {
    progress(`${name}: starting est-ra in ${dirs[i]!}`);
    nodes.push(await serveEstRa(dirs[i]!, ports[i]!, passcode));
  }
  return { postgres, stopPostgres, nodes, opsPorts };
}

// ------------------------------------------------------------------ HAProxy

/** HAProxy in TCP mode: device TLS (and client certificates) go through to est-ra untouched. */
function haproxyConfig(port: number, nodes: readonly EstRa[], opsPorts: readonly number[]): string {
  const servers = nodes.map((node, i) => `  server node-${i + 1} 127.0.0.1:${node.port} check port ${opsPorts[i]!}`);
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend est',
    `  bind 127.0.0.1:${port}`,
    '  default_backend est_ra_nodes',
    'backend est_ra_nodes',
    '  balance roundrobin',
    // Readiness from each node's ops listener (plain HTTP), as docs/cluster.md sets it up.
    '  option httpchk',
    '  http-check send meth GET uri /readyz',
    '  http-check expect status 200',
    '  default-server inter 2s fall 2 rise 2',
    // With est-ra's listen.proxy_protocol on, `send-proxy-v2` goes at the end of each server line (devices' real addresses).
    ...servers,
    '',
  ].join('\n');
}

async function startHaproxy(dir: string, nodes: readonly EstRa[], opsPorts: readonly number[]): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const configFile = join(dir, 'haproxy.cfg');
  writeFileSync(configFile, haproxyConfig(port, nodes, opsPorts));
  const logFile = join(dir, 'haproxy.log');
  const logFd = openSync(logFile, 'a');
  // -db: in the foreground, one process (no master-worker), so its pid is the one whose CPU is read.
  const child = spawn('haproxy', ['-db', '-f', configFile], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const spawned = await new Promise<Error | undefined>((done) => {
    child.once('spawn', () => done(undefined));
    child.once('error', done);
  });
  if (spawned) throw new Error(`could not start haproxy (Debian: apt-get install haproxy; scripts/install-test-tools.sh does it): ${spawned.message}`);
  running.add(child);
  child.once('exit', () => running.delete(child));
  const deadline = Date.now() + HAPROXY_START_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}: ${readFileSync(logFile, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`haproxy did not listen within ${HAPROXY_START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  return { child, port };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

// --------------------------------------------------------------------- section

async function startSetups(root: string): Promise<Setup[]> {
  const sqliteDir = join(root, 'cluster-sqlite');
  mkdirSync(sqliteDir);
  progress(`sqlite_one_node: starting est-ra in ${sqliteDir}`);
  const sqlite = await startEstRa(sqliteDir);

  const single = await postgresNodes(root, 'cluster-pg-one', 1);
  const pair = await postgresNodes(root, 'cluster-pg-two', 2);
  progress(`postgres_two_nodes_haproxy: starting HAProxy (mode tcp, roundrobin) in front of ports ${pair.nodes.map((n) => n.port).join(', ')}`);
  const haproxy = await startHaproxy(root, pair.nodes, pair.opsPorts);
  return [
    { name: 'sqlite_one_node', target: targetOf(sqlite), nodes: [sqlite] },
    { name: 'postgres_one_node', target: targetOf(single.nodes[0]!), nodes: single.nodes, postgres: single.postgres, stopPostgres: single.stopPostgres },
    {
      name: 'postgres_two_nodes_haproxy',
      target: { ...targetOf(pair.nodes[0]!), port: haproxy.port },
      nodes: pair.nodes,
      postgres: pair.postgres,
      stopPostgres: pair.stopPostgres,
      haproxy: haproxy.child,
    },
  ];
}

const SHAPE: Record<SetupName, Pick<ClusterSetupResult, 'nodes' | 'store' | 'load_balancer'>> = {
  sqlite_one_node: { nodes: 1, store: 'sqlite', load_balancer: 'none' },
  postgres_one_node: { nodes: 1, store: 'postgres', load_balancer: 'none' },
  postgres_two_nodes_haproxy: { nodes: 2, store: 'postgres', load_balancer: 'haproxy' },
};

export async function benchCluster(root: string, nextCsr: () => string): Promise<ClusterResults> {
  const setups = await startSetups(root);
  try {
    for (const setup of setups) {
      // Two through HAProxy: roundrobin sends one to each node.
      for (let i = 0; i < setup.nodes.length; i++) await checkOneEnrollment(setup.target, nextCsr());
      progress(`${setup.name} warm-up: ${WARMUP_SECONDS} s at c${CONCURRENCY}`);
      await measureRound(setup, nextCsr, WARMUP_SECONDS);
    }
    const rounds = new Map<SetupName, ClusterRound[]>(setups.map((setup) => [setup.name, []]));
    for (let r = 0; r < LEVEL_ROUNDS; r++) {
      // A rotating order: no setup always runs right after another's load.
      for (const setup of [...setups.slice(r % setups.length), ...setups.slice(0, r % setups.length)]) {
        progress(`cluster ${setup.name} c${CONCURRENCY} round ${r + 1}/${LEVEL_ROUNDS}: ${ROUND_SECONDS} s`);
        const result = await measureRound(setup, nextCsr, ROUND_SECONDS);
        progress(`${setup.name}: ${JSON.stringify(result)}`);
        rounds.get(setup.name)!.push(result);
      }
    }
    const results = Object.fromEntries(setups.map((setup) => [setup.name, { ...SHAPE[setup.name], ...medianRound(rounds.get(setup.name)!) }])) as Record<
      SetupName,
      ClusterSetupResult
    >;
    const baseline = results.sqlite_one_node.cpu_ms_per_enrollment.server_total;
    const vsSqlite = Object.fromEntries(
      setups.map((setup) => [setup.name, round(results[setup.name].cpu_ms_per_enrollment.server_total / Math.max(baseline, 0.01), 2)]),
    ) as Record<SetupName, number>;
    return {
      concurrency: CONCURRENCY,
      rounds: LEVEL_ROUNDS,
      round_seconds: ROUND_SECONDS,
      cores: availableParallelism(),
      setups: results,
      server_cpu_vs_sqlite_one_node: vsSqlite,
    };
  } finally {
    for (const setup of setups) {
      if (setup.haproxy) await stopEstRa(setup.haproxy);
      for (const node of setup.nodes) await stopEstRa(node.child);
    }
    for (const setup of setups) {
      if (!setup.stopPostgres) continue;
      await setup.stopPostgres();
      cleanUps.delete(setup.stopPostgres);
    }
  }
}
