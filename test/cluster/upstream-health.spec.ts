import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { curl } from '../helpers/clients.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import type { RequestJson } from '../helpers/admin-cli.js';
import { forwardingProfile } from '../helpers/config.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { eventually } from '../helpers/wait.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const DEVICES = 8;
/** How long the upstream's enroll requests are counted while it is down. */
const WATCH_MS = 8_000;

/**
 * The most probes one backoff schedule (upstream-health.ts: the k-th wait is
 * at least half of 2^(k-1) s) can send within `ms`: n probes need at least
 * 0.5 + 1 + ... + 2^(n-2) s = (2^(n-1) - 1) / 2 s between the first and the last.
 */
function probesOneScheduleAllows(ms: number): number {
  let n = 1;
  while ((2 ** n - 1) / 2 <= ms / 1000) n++;
  return n;
}

/**
 * Upstream health shared across nodes (issue #13): while the upstream is
 * down, the two nodes send one schedule of probes between them, not one each;
 * when it is back, whichever node's probe sees it first clears the shared
 * state, the queues drain on both nodes, and each request is issued once.
 */
describe('upstream health across est-ra nodes: one probe for the cluster, one recovery for all', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let upstream: Upstream;
  let workDir: string | undefined;

  before(async () => {
    const work = mkdtempSync(join(tmpdir(), 'est-ra-health-'));
    workDir = work;
    const identity = await makeRaIdentity(work);
    upstream = await startUpstream({ dir: join(work, 'upstream'), clientCaFile: identity.caFile });
    cluster = await startCluster({
      edit: (config) => {
        const profiles = config.profiles as Record<string, Record<string, unknown>>;
        profiles.up = forwardingProfile(profiles.demo, 'up', {
          url: upstream.baseUrl,
          ra_certificate: identity.certFile,
          ra_key: identity.keyFile,
          trust_anchors: [upstream.rootCaFile],
          timeout_ms: 5_000,
        });
      },
    });
    await Promise.all([cluster.start('node-a'), cluster.start('node-b')]);
  });
  after(async () => {
    await (cluster as TestCluster | undefined)?.close();
    await (upstream as Upstream | undefined)?.close();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const send = (node: string, device: KeyAndCsr): Promise<{ status: number; body: string; headers: string }> =>
    curl(cluster.client(node), '/up/simpleenroll', ['--user', `:${cluster.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  const csrSha256 = (device: KeyAndCsr): string => createHash('sha256').update(device.csrDer).digest('hex');
  const enrollRequests = async (): Promise<number> => (await upstream.stats()).requests.simpleenroll;

  it('while the upstream fails, both nodes queue at once and probe on one schedule; back, both drain and each request is issued once', async () => {
    // 500: the upstream answers, so each probe is one request it counts (a reset or a stopped server would not be).
    await upstream.setMode('error500');
    const devices = await Promise.all(Array.from({ length: DEVICES }, (_, i) => opensslCsr(cluster.dir, `health-${i}`)));
    const first = await Promise.all(devices.map((device, i) => send(i % 2 ? 'node-b' : 'node-a', device)));
    expect(first.map((answer) => answer.status)).to.deep.equal(devices.map(() => 202));

    // Both nodes hold queued requests, each with its retry worker: the probes the upstream sees are one schedule's.
    const startedAt = performance.now();
    const before = await enrollRequests();
    await new Promise((resolve) => setTimeout(resolve, WATCH_MS));
    const probes = (await enrollRequests()) - before;
    const watched = performance.now() - startedAt;
    const allowed = probesOneScheduleAllows(watched);
    expect(probes, `probes in ${Math.round(watched)} ms; one schedule allows ${allowed}`).to.be.within(1, allowed);
    const waiting = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', String(DEVICES));
    expect(waiting.map((request) => request.outcome)).to.deep.equal(devices.map(() => 'queued'));

    await upstream.setMode('normal');
    await eventually(async () => {
      const requests = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', String(DEVICES));
      return requests.every((request) => request.outcome === 'issued') ? true : undefined;
    }, 60_000);
    const { issuedPerCsr } = await upstream.stats();
    expect(devices.map((device) => issuedPerCsr[csrSha256(device)] ?? 0)).to.deep.equal(devices.map(() => 1));
    // Every device's retry gets its certificate from either node.
    const retries = await Promise.all(devices.map((device, i) => send(i % 2 ? 'node-a' : 'node-b', device)));
    expect(retries.map((answer) => answer.status)).to.deep.equal(devices.map(() => 200));

    // Each node learned of the recovery (from its own probe or from the shared state): a new device is forwarded at
    // once, never queued, which a node still holding the upstream as failing would do. Its copy is at most a refresh
    // (1 s) plus a worker interval old, so each try is a new device until one gets its certificate in the first answer.
    let tries = 0;
    for (const node of ['node-a', 'node-b']) {
      const answer = await eventually(async () => {
        const got = await send(node, await opensslCsr(cluster.dir, `after-${node}-${++tries}`));
        return got.status === 200 ? got : undefined;
      }, 10_000);
      expect(answer.status).to.equal(200);
    }
  });
});
