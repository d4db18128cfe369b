import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { adminCli, type RequestJson } from '../helpers/admin-cli.js';
import { initDemoState, serveEstRa, type EstRaProcess } from '../helpers/est-ra-process.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import type { TestEstRa } from '../helpers/est-ra.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/**
 * Two est-ra processes on one PostgreSQL, as two plant servers behind a
 * load balancer: what one node does, the other sees at once. Each node is
 * `est-ra serve` in its own process with the same configuration (the same
 * local CA files, as an admin copies /etc/est-ra to both), listening on its
 * own port; the admin CLI runs against the same configuration.
 */
describe('two est-ra nodes on one PostgreSQL', function () {
  this.timeout(120_000);
  let postgres: TestPostgres;
  let dir: string;
  let configFile: string;
  const nodes: EstRaProcess[] = [];
  /** What the curl and openssl helpers need of a node: its URL, the demo PKI, a scratch directory. */
  let clients: [TestEstRa, TestEstRa];
  let cli: ReturnType<typeof adminCli>;

  before(async () => {
    postgres = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'est-ra-cluster-'));
    ({ configFile } = await initDemoState(dir, { host: '127.0.0.1' }));
    const database = await postgres.createDatabase('est_ra');
    writeFileSync(
      configFile,
      editConfig(readFileSync(configFile, 'utf8'), (config) => {
        config.store = {
          postgres: { host: postgres.host, port: postgres.port, database, user: postgres.user, password: { file: postgres.passwordFile } },
          retention_days: 90,
        };
      }),
    );
    cli = adminCli(configFile);
    // The schema is created by the first node to start; migrate --check says it is due before that.
    expect((await cli.run('migrate', '--check')).code).to.equal(1);
    nodes.push(await serveEstRa(configFile), await serveEstRa(configFile));
    const client = (node: EstRaProcess): TestEstRa =>
      ({ url: node.url, dir, rootCaFile: join(dir, 'pki', 'root-ca.crt'), issuingCaFile: join(dir, 'pki', 'issuing-ca.crt') }) as TestEstRa;
    clients = [client(nodes[0]!), client(nodes[1]!)];
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop('SIGTERM')));
    await (postgres as TestPostgres | undefined)?.stop(); // before() may have failed before starting it
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const passcode = async (...args: string[]): Promise<{ id: string; passcode: string }> => {
    const [created] = await cli.json<{ id: string; passcode: string }>('passcodes', 'create', '--policy', 'demo', ...args);
    return created!;
  };
  const enroll = async (node: 0 | 1, name: string, secret: string): Promise<{ status: number; body: string }> => {
    const device = await opensslCsr(dir, name, { subject: `/CN=${name}` });
    return curl(clients[node], '/simpleenroll', ['--user', `:${secret}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };

  it('the nodes applied the schema once between them, and migrate --check says it is current', async () => {
    const status = await cli.run('migrate', '--check', '--json');
    expect(status.code).to.equal(0);
    const report = JSON.parse(status.stdout) as { applied: number; known: number; store: string };
    expect(report.applied).to.equal(report.known);
    expect(report.store).to.not.include(postgres.password);
  });

  it("a passcode's last use is taken once, whichever node the two devices reach", async () => {
    const { id, passcode: secret } = await passcode('--max-uses', '1');
    const answers = await Promise.all([enroll(0, 'last-use-a', secret), enroll(1, 'last-use-b', secret)]);
    expect(answers.map((a) => a.status).sort()).to.deep.equal([200, 401]);
    const listed = (await cli.json<{ id: string; uses: string }>('passcodes', 'list', '--policy', 'demo')).find((p) => p.id === id);
    expect(listed?.uses).to.equal('1/1');
  });

  it('a passcode disabled through one configuration is refused by both nodes at once', async () => {
    const { id, passcode: secret } = await passcode();
    expect((await enroll(1, 'before-disable', secret)).status).to.equal(200);
    await cli.text('passcodes', 'disable', id);
    expect((await enroll(0, 'after-disable-a', secret)).status).to.equal(401);
    expect((await enroll(1, 'after-disable-b', secret)).status).to.equal(401);
  });

  it("a certificate issued by one node is renewed by the other, and the admin sees both nodes' requests", async () => {
    const { passcode: secret } = await passcode();
    const answer = await enroll(0, 'renew-across', secret);
    expect(answer.status).to.equal(200);
    const cert = await certsFromP7(dir, answer.body, 'renew-across-cert');
    expect(await opensslVerify(clients[0], cert)).to.include('OK');
    const renewal = await opensslCsr(dir, 'renew-across-2', { subject: '/CN=renew-across' });
    const renewed = await curl(clients[1], '/simplereenroll', [
      '--cert',
      cert,
      '--key',
      join(dir, 'renew-across.key'),
      ...PKCS10,
      '--data-binary',
      `@${renewal.csrPemFile}`,
    ]);
    expect(renewed.status, renewed.body).to.equal(200);
    const requests = await cli.json<RequestJson>('requests', 'list', '--limit', '2');
    expect(requests.map((r) => [r.operation, r.outcome])).to.deep.equal([
      ['simplereenroll', 'issued'],
      ['simpleenroll', 'issued'],
    ]);
  });
});
