import { expect } from 'chai';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { opensslCsr } from '../helpers/csr.js';
import type { RequestJson } from '../helpers/admin-cli.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import type { Json } from '../helpers/config.js';
import { freePort } from '../helpers/net.js';
import { run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/**
 * The shared database stops (a PostgreSQL restart, a failover, an outage)
 * under a running node: devices get 503 with Retry-After and one line, the
 * node stays up and says it is not ready, the journal names the cause without
 * a line per scan, and once the database is back the node serves again
 * without a restart, with nothing it recorded lost.
 */
describe('the database goes away under a running node, and comes back', function () {
  this.timeout(120_000);
  let cluster: TestCluster;
  let opsPort: number;

  before(async () => {
    cluster = await startCluster();
    opsPort = await freePort();
    await cluster.start('node-a', (config: Json) => void (config.ops = { listen: { host: '127.0.0.1', port: opsPort } }));
  });
  after(async () => (cluster as TestCluster | undefined)?.close());

  const enroll = async (name: string): Promise<{ status: number; headers: string; body: string }> => {
    const device = await opensslCsr(cluster.dir, name, { subject: `/CN=${name}` });
    return curl(cluster.client('node-a'), '/simpleenroll', ['--user', `:${cluster.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };
  const readyz = async (): Promise<{ status: number; body: string }> => {
    const result = await run('curl', ['-sS', '-w', '\n%{http_code}', `http://127.0.0.1:${opsPort}/readyz`]);
    const cut = result.stdout.lastIndexOf('\n');
    return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut) };
  };
  const linesSince = (start: number, message: string): number =>
    cluster
      .node('node-a')
      .output()
      .slice(start)
      .split('\n')
      .filter((line) => line.includes(`"message":"${message}"`)).length;

  it('503 with Retry-After and a one-line reason while it is down, /readyz says why, and the node serves again once it is back', async () => {
    expect((await enroll('before-outage')).status).to.equal(200);
    const logStart = cluster.node('node-a').output().length;
    await cluster.postgres.pause();

    const during = await enroll('during-outage');
    expect(during.status, during.body).to.equal(503);
    expect(during.headers).to.match(/^retry-after: 10\r?$/im);
    expect(during.body.trim()).to.equal("503 est-ra's database is unavailable; retry later");
    const notReady = await readyz();
    expect(notReady.status).to.equal(503);
    expect(JSON.parse(notReady.body)).to.include({ ready: false, store: 'unreachable' });
    const admin = await cluster.cli.run('requests', 'list');
    expect(admin.code).to.equal(1);
    expect(admin.stderr.trim().split('\n')).to.have.length(1);
    expect(admin.stderr).to.match(/^est-ra: cannot open the store postgres:\/\/est_ra@127\.0\.0\.1:\d+\/est_ra: connect ECONNREFUSED/);

    // The retry worker scans four times a second; while the database is down it says so once, not at every scan.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(cluster.node('node-a').child.exitCode, 'still running').to.equal(null);
    expect(linesSince(logStart, 'forwarding a queued request failed')).to.be.at.most(1);
    expect(linesSince(logStart, 'store unavailable')).to.equal(1);
    expect(cluster.node('node-a').output().slice(logStart)).to.not.match(/\n\s+at /);

    await cluster.postgres.resume();
    const after = await eventually(async () => {
      const answer = await enroll(`after-outage-${Date.now()}`);
      return answer.status === 200 ? answer : undefined;
    }, 30_000);
    const cert = await certsFromP7(cluster.dir, after.body, 'after-outage-cert');
    expect(await opensslVerify(cluster.client('node-a'), cert)).to.include('OK');
    expect((await readyz()).status).to.equal(200);
    await eventually(() => linesSince(logStart, 'store reachable again') === 1);
    const requests = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '10');
    expect(requests.filter((r) => r.outcome === 'issued').map((r) => r.subject?.replace(/^.*CN=/, ''))).to.include('before-outage');
    expect((await cluster.cli.run('store', 'check')).stdout.trim()).to.equal('ok');
  });
});
