import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { opensslCsr } from '../helpers/csr.js';
import type { RequestJson } from '../helpers/admin-cli.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { editConfig } from '../helpers/config.js';
import { eventually } from '../helpers/wait.js';
import { serveEstRa } from '../helpers/est-ra-process.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/**
 * Two est-ra processes on one PostgreSQL (test/helpers/cluster.ts): what
 * one node does, the other sees at once, and the admin CLI sees both.
 */
describe('two est-ra nodes on one PostgreSQL', function () {
  this.timeout(120_000);
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({
      edit: (config) => {
        // A second profile whose enrollments wait for an administrator (DigiCert's require_approval_for_enroll).
        const profiles = config.profiles as Record<string, Record<string, unknown>>;
        profiles.gated = { ...profiles.demo, default: false, labels: ['gated'], require_approval_for_enroll: true, approval_retry_after_s: 1 };
      },
    });
    await Promise.all([cluster.start('node-a'), cluster.start('node-b')]);
  });
  after(async () => (cluster as TestCluster | undefined)?.close());

  const passcode = async (...args: string[]): Promise<{ id: string; passcode: string }> => {
    const [created] = await cluster.cli.json<{ id: string; passcode: string }>('passcodes', 'create', '--policy', 'demo', ...args);
    return created!;
  };
  const enroll = async (node: string, name: string, secret: string): Promise<{ status: number; body: string }> => {
    const device = await opensslCsr(cluster.dir, name, { subject: `/CN=${name}` });
    return curl(cluster.client(node), '/simpleenroll', ['--user', `:${secret}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };

  it('migrate --check says the shared schema is current, and names the store without its password', async () => {
    const status = await cluster.cli.run('migrate', '--check', '--json');
    expect(status.code).to.equal(0);
    const report = JSON.parse(status.stdout) as { applied: number; known: number; store: string };
    expect(report.applied).to.equal(report.known);
    expect(report.store).to.not.include(cluster.postgres.password);
  });

  it("a passcode's last use is taken once, whichever node the two devices reach", async () => {
    const { id, passcode: secret } = await passcode('--max-uses', '1');
    const answers = await Promise.all([enroll('node-a', 'last-use-a', secret), enroll('node-b', 'last-use-b', secret)]);
    expect(answers.map((a) => a.status).sort()).to.deep.equal([200, 401]);
    const listed = (await cluster.cli.json<{ id: string; uses: string }>('passcodes', 'list', '--policy', 'demo')).find((p) => p.id === id);
    expect(listed?.uses).to.equal('1/1');
  });

  it('a passcode disabled through one configuration is refused by both nodes at once', async () => {
    const { id, passcode: secret } = await passcode();
    expect((await enroll('node-b', 'before-disable', secret)).status).to.equal(200);
    await cluster.cli.text('passcodes', 'disable', id);
    expect((await enroll('node-a', 'after-disable-a', secret)).status).to.equal(401);
    expect((await enroll('node-b', 'after-disable-b', secret)).status).to.equal(401);
  });

  it('an approval given through the admin CLI is honoured by the node the device retries on', async () => {
    const device = await opensslCsr(cluster.dir, 'gated-device', { subject: '/CN=gated-device' });
    const send = (node: string) =>
      curl(cluster.client(node), '/gated/simpleenroll', ['--user', `:${cluster.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    const first = await send('node-a');
    expect(first.status, first.body).to.equal(202);
    const id = /^x-request-id: (\S+)/im.exec(first.headers)![1]!;
    expect((await send('node-b')).status, 'still pending on the other node').to.equal(202);
    await cluster.cli.text('approvals', 'approve', id, '--by', 'plant-admin');
    const issued = await eventually(async () => {
      const answer = await send('node-b');
      return answer.status === 200 ? answer : undefined;
    }, 20_000);
    const cert = await certsFromP7(cluster.dir, issued.body, 'gated-device-cert');
    expect(await opensslVerify(cluster.client('node-b'), cert)).to.include('OK');
    const [approval] = await cluster.cli.json<{ state: string; decided_by: string }>('approvals', 'show', id);
    expect(approval).to.include({ state: 'approved', decided_by: 'plant-admin' });
  });

  it("a certificate issued by one node is renewed by the other, and the admin sees both nodes' requests", async () => {
    const answer = await enroll('node-a', 'renew-across', cluster.passcode);
    expect(answer.status).to.equal(200);
    const cert = await certsFromP7(cluster.dir, answer.body, 'renew-across-cert');
    expect(await opensslVerify(cluster.client('node-a'), cert)).to.include('OK');
    const renewal = await opensslCsr(cluster.dir, 'renew-across-2', { subject: '/CN=renew-across' });
    const renewed = await curl(cluster.client('node-b'), '/simplereenroll', [
      '--cert',
      cert,
      '--key',
      join(cluster.dir, 'renew-across.key'),
      ...PKCS10,
      '--data-binary',
      `@${renewal.csrPemFile}`,
    ]);
    expect(renewed.status, renewed.body).to.equal(200);
    const requests = await cluster.cli.json<RequestJson>('requests', 'list', '--limit', '2');
    expect(requests.map((r) => [r.operation, r.outcome])).to.deep.equal([
      ['simplereenroll', 'issued'],
      ['simpleenroll', 'issued'],
    ]);
  });

  it('SIGHUP changes only the node that gets it; rolled to the other node as docs/cluster.md says, both serve the change', async () => {
    const cacerts = async (node: string): Promise<number> => (await curl(cluster.client(node), '/line-9/cacerts', [])).status;
    const addLine9 = (name: string): void => {
      const file = cluster.configFileOf(name);
      writeFileSync(
        file,
        editConfig(readFileSync(file, 'utf8'), (config) => {
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          profiles['line-9'] = { ...profiles.demo, default: false, labels: ['line-9'] };
        }),
      );
    };
    const reload = async (name: string): Promise<void> => {
      const node = cluster.node(name);
      const seen = node.output().length;
      node.child.kill('SIGHUP');
      await eventually(() => node.output().slice(seen).includes('"configuration reloaded"'));
    };
    expect([await cacerts('node-a'), await cacerts('node-b')]).to.deep.equal([404, 404]);
    // Both files change first (an admin copies the configuration to every host); only a reload makes a node read its file.
    addLine9('node-a');
    addLine9('node-b');
    await reload('node-a');
    expect([await cacerts('node-a'), await cacerts('node-b')], 'node-b has not been reloaded').to.deep.equal([200, 404]);
    const enrolled = await enroll('node-b', 'during-roll', cluster.passcode);
    expect(enrolled.status, 'node-b goes on serving its old profiles meanwhile').to.equal(200);
    await reload('node-b');
    expect([await cacerts('node-a'), await cacerts('node-b')]).to.deep.equal([200, 200]);
  });

  it("a second process under a running node's name refuses to start and says which; est-ra nodes lists both nodes running, with pid and version", async () => {
    const second = await serveEstRa(cluster.configFileOf('node-a')).then(
      (node) => node.stop('SIGTERM').then(() => 'it started'),
      (err: unknown) => (err as Error).message,
    );
    expect(second).to.match(/another est-ra is running as node 'node-a' on this store \(host [^,]+, pid \d+, version \d+\.\d+\.\d+, seen \d+ s ago\)/);
    const nodes = await cluster.cli.json<{ name: string; state: string; pid: number; version: string }>('nodes');
    expect(nodes.map((n) => [n.name, n.state, n.pid])).to.deep.equal([
      ['node-a', 'running', cluster.node('node-a').child.pid],
      ['node-b', 'running', cluster.node('node-b').child.pid],
    ]);
    expect(nodes[0]!.version).to.match(/^\d+\.\d+\.\d+$/);
  });
});
