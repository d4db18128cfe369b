import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { adminCli } from '../helpers/admin-cli.js';
import { curl } from '../helpers/clients.js';
import { editConfig, type Json } from '../helpers/config.js';
import { opensslCsr, opensslSelfSigned } from '../helpers/csr.js';
import { initDemoState, serveEstRa } from '../helpers/est-ra-process.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import type { TestEstRa } from '../helpers/est-ra.js';

/**
 * `store.postgres.ssl` against a real PostgreSQL that takes TCP connections
 * only over TLS (pg_hba hostssl; hostnossl rejected), with the libpq
 * meanings of each mode: require encrypts without checking the server,
 * verify-ca checks its certificate against `ca`, verify-full checks the
 * address or host name too. Each case runs the admin CLI as an admin would.
 */
describe('est-ra reaches PostgreSQL over TLS as store.postgres.ssl says', function () {
  this.timeout(120_000);
  let postgres: TestPostgres;
  let dir: string;
  let base: string;
  let database: string;
  let otherCa: string;

  before(async () => {
    postgres = await startPostgres({ tls: true });
    dir = mkdtempSync(join(tmpdir(), 'est-ra-pg-tls-'));
    const { configFile } = await initDemoState(dir, { host: '127.0.0.1' });
    base = readFileSync(configFile, 'utf8');
    database = await postgres.createDatabase('est_ra');
    ({ certFile: otherCa } = await opensslSelfSigned(dir, 'other-ca', { subject: '/CN=not the database CA' }));
  });
  after(async () => {
    await (postgres as TestPostgres | undefined)?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  let configs = 0;
  const configWith = (ssl?: Json): string => {
    const file = join(dir, `config-${++configs}.yaml`);
    writeFileSync(
      file,
      editConfig(base, (config) => {
        config.store = {
          postgres: {
            host: postgres.host,
            port: postgres.port,
            database,
            user: postgres.user,
            password: { file: postgres.passwordFile },
            ...(ssl ? { ssl } : {}),
          },
        };
      }),
    );
    return file;
  };
  const migrate = (ssl?: Json) => adminCli(configWith(ssl)).run('migrate');

  it("ok verify-full with the CA that issued the server's certificate for 127.0.0.1: a node serves curl, and every connection it holds is encrypted", async () => {
    const configFile = configWith({ mode: 'verify-full', ca: postgres.caFile });
    expect((await adminCli(configFile).run('migrate')).code).to.equal(0);
    const [created] = await adminCli(configFile).json<{ passcode: string }>('passcodes', 'create', '--policy', 'demo');
    const node = await serveEstRa(configFile);
    try {
      const device = await opensslCsr(dir, 'over-tls', { subject: '/CN=over-tls' });
      const client = { url: node.url, dir, rootCaFile: join(dir, 'pki', 'root-ca.crt') } as TestEstRa;
      const answer = await curl(client, '/simpleenroll', [
        '--user',
        `:${created!.passcode}`,
        '-H',
        'Content-Type: application/pkcs10',
        '--data-binary',
        `@${device.csrPemFile}`,
      ]);
      expect(answer.status, answer.body).to.equal(200);
      // PostgreSQL's own view of the node's connections (pg_stat_ssl), asked over TLS too.
      const stdout = await postgres.query(
        `SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '${database}' AND a.pid <> pg_backend_pid()`,
        database,
      );
      const connections = stdout.trim().split('\n');
      expect(connections.length).to.be.greaterThan(0);
      for (const connection of connections) expect(connection).to.match(/^t\|TLSv1\.[23]$/);
    } finally {
      await node.stop('SIGTERM');
    }
  });

  it("fail verify-full or verify-ca with a CA that did not issue the server's certificate: refused, the line names the store and the certificate problem; require connects", async () => {
    for (const mode of ['verify-full', 'verify-ca']) {
      const refused = await migrate({ mode, ca: otherCa });
      expect(refused.code, mode).to.equal(1);
      expect(refused.stderr.trim().split('\n'), mode).to.have.length(1);
      expect(refused.stderr, mode).to.match(/^est-ra: cannot open the store postgres:\/\/est_ra@127\.0\.0\.1:\d+\/est_ra: .*certificate/);
    }
    expect((await migrate({ mode: 'require' })).code).to.equal(0);
  });

  it('fail no ssl (or mode disable) against a server that takes only TLS: refused by its pg_hba.conf, and the line says so', async () => {
    for (const ssl of [undefined, { mode: 'disable' }]) {
      const refused = await migrate(ssl);
      expect(refused.code).to.equal(1);
      expect(refused.stderr).to.match(
        /^est-ra: cannot open the store .*: pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "est_ra", database "est_ra", no encryption$/m,
      );
    }
  });

  it('fail verify-full when the certificate names another host (DNS:db.plant.example), while verify-ca, which checks the CA only, connects', async () => {
    await postgres.reissueServerCertificate('DNS:db.plant.example');
    const refused = await migrate({ mode: 'verify-full', ca: postgres.caFile });
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(
      /^est-ra: cannot open the store .*: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list/,
    );
    expect((await migrate({ mode: 'verify-ca', ca: postgres.caFile })).code).to.equal(0);
  });
});
