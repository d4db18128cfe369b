import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { certsFromP7, curl } from '../helpers/clients.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import type { RequestJson } from '../helpers/admin-cli.js';
import { forwardingProfile } from '../helpers/config.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { mustRun } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';
import { createHash } from 'node:crypto';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const LEASE_SECONDS = 15;
// Long enough that node-a is still waiting on the hanging upstream when the test kills it.
const UPSTREAM_TIMEOUT_MS = 10_000;

/**
 * Upstream work across nodes: a request in flight on a node that is killed
 * is forwarded by the other once the dead node's lease expires, and a queue
 * built while the upstream was down is forwarded exactly once however many
 * nodes drain it. The upstream is the test EST server (its own process),
 * which counts what it issued per CSR.
 */
describe('upstream work across est-ra nodes: leases and one forward per request', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let upstream: Upstream;
  let workDir: string | undefined;

  before(async () => {
    const work = mkdtempSync(join(tmpdir(), 'est-ra-failover-'));
    workDir = work;
    const identity = await makeRaIdentity(work);
    upstream = await startUpstream({ dir: join(work, 'upstream'), clientCaFile: identity.caFile });
    cluster = await startCluster({
      edit: (config) => {
        config.cluster = { lease_seconds: LEASE_SECONDS };
        // A profile forwarding upstream, beside the demo's local CA profile.
        const profiles = config.profiles as Record<string, Record<string, unknown>>;
        profiles.up = forwardingProfile(profiles.demo, 'up', {
          url: upstream.baseUrl,
          ra_certificate: identity.certFile,
          ra_key: identity.keyFile,
          trust_anchors: [upstream.rootCaFile],
          timeout_ms: UPSTREAM_TIMEOUT_MS,
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

  it('a request in flight on a node killed with kill -9 is forwarded by the other node once the lease expires', async () => {
    await upstream.setMode('hang');
    const device = await opensslCsr(cluster.dir, 'failover-device');
    const first = send('node-a', device); // node-a records it and forwards; the upstream does not answer
    const recorded = await eventually(async () => {
      const [latest] = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '1');
      return latest?.outcome === 'received' ? latest : undefined;
    }, 10_000);
    await cluster.node('node-a').stop('SIGKILL');
    expect((await first).status, 'the device lost its connection').to.equal(0);
    await upstream.setMode('normal');

    // The device retries the same CSR at the node it reaches now: 202 while node-a's lease runs, then its certificate.
    const answers: number[] = [];
    const certificate = await eventually(
      async () => {
        const answer = await send('node-b', device);
        answers.push(answer.status);
        if (answer.status === 200) return answer.body;
        expect(answer.status, answer.body).to.equal(202);
        expect(answer.headers).to.match(/retry-after: \d+/i);
        await new Promise((resolve) => setTimeout(resolve, 500));
        return undefined;
      },
      (LEASE_SECONDS + 10) * 1000,
    );
    expect(answers[0]).to.equal(202);
    const pem = await certsFromP7(cluster.dir, certificate, 'failover-device-cert');
    await mustRun('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, pem]);

    const [shown] = await cluster.cli.json<RequestJson>('requests', 'show', recorded.id);
    expect(shown).to.include({ outcome: 'issued', possibly_issued_twice_upstream: true });
    expect(cluster.node('node-b').output()).to.include(recorded.id);
    expect((await upstream.stats()).issuedPerCsr[csrSha256(device)]).to.equal(1);
  });

  it('a queue built while the upstream was down is forwarded once per request, whichever node takes it', async () => {
    await cluster.start('node-a'); // back after the kill: its own leftovers went to node-b already
    await upstream.stop();
    const devices = await Promise.all(Array.from({ length: 12 }, (_, i) => opensslCsr(cluster.dir, `queued-${i}`)));
    const first = await Promise.all(devices.map((device, i) => send(i % 2 ? 'node-b' : 'node-a', device)));
    expect(first.map((answer) => answer.status)).to.deep.equal(devices.map(() => 202));
    await upstream.restart();
    await eventually(async () => {
      const waiting = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '12');
      return waiting.every((request) => request.outcome === 'issued') ? true : undefined;
    }, 60_000);
    // Each request went up once, unless an attempt timed out after reaching the upstream (a slow machine): then it
    // may have gone up twice, and est-ra says so on the request (EST has no idempotency key, RFC 7030 §4.2).
    const { issuedPerCsr } = await upstream.stats();
    const counts = devices.map((device) => issuedPerCsr[csrSha256(device)] ?? 0);
    expect(Math.min(...counts), 'every request went up').to.be.at.least(1);
    const requests = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '12');
    const marked = requests.filter((request) => request.possibly_issued_twice_upstream).length;
    expect(marked, `went up: ${counts.join(', ')}`).to.be.at.least(counts.filter((n) => n > 1).length);
  });
});
