import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';
import { initDemoState, serveEstRa, type EstRaProcess } from '../helpers/est-ra-process.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function readRequests(dbFile: string): { id: string; state: string; serial: string | null; possibly_issued_twice_upstream: number }[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT id, state, serial, possibly_issued_twice_upstream FROM requests ORDER BY received_at`).all() as ReturnType<typeof readRequests>;
  } finally {
    db.close();
  }
}

function requestStates(dbFile: string): Record<string, number> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`SELECT state, count(*) AS n FROM requests GROUP BY state`).all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  } finally {
    db.close();
  }
}

describe("kill -9 between recording a request and the upstream's answer", function () {
  this.timeout(90_000);
  let dir: string;
  let upstream: Upstream;
  let estRa: EstRaProcess | undefined;

  after(async () => {
    await estRa?.stop('SIGKILL');
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ok after a restart the request is forwarded again, issued once, and the device's retry gets it", async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-crash-'));
    const identity = await makeRaIdentity(dir);
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, mode: 'hang' });
    const stateDir = join(dir, 'ra');
    const { configFile, passcode } = await initDemoState(stateDir);
    writeFileSync(
      configFile,
      editProfile(readFileSync(configFile, 'utf8'), 'demo', (profile) => {
        profile.upstream = 'est';
        profile.est = {
          url: upstream.baseUrl,
          ra_pkcs12: identity.p12File,
          ra_pkcs12_passphrase: { file: join(dir, 'p12.pass') },
          trust_anchors: [upstream.rootCaFile],
          timeout_ms: 20_000,
        };
      }),
    );
    writeFileSync(join(dir, 'p12.pass'), `${identity.p12Passphrase}\n`, { mode: 0o600 });
    const dbFile = join(stateDir, 'est-ra.db');
    const rootCa = join(stateDir, 'pki', 'root-ca.crt');
    const device = await opensslCsr(dir, 'crash-device');
    const enroll = (url: string): Promise<{ code: number; stdout: string }> =>
      run('curl', [
        '-sS',
        '--cacert',
        rootCa,
        '--user',
        `:${passcode}`,
        '-H',
        'Content-Type: application/pkcs10',
        '--data-binary',
        `@${device.csrPemFile}`,
        '-w',
        '\n%{http_code}',
        `${url}/.well-known/est/simpleenroll`,
      ]);

    estRa = await serveEstRa(configFile);
    const inFlight = enroll(estRa.url);
    await eventually(() => (requestStates(dbFile).received === 1 ? true : undefined));
    await estRa.stop('SIGKILL');
    expect((await inFlight).stdout).not.to.match(/\n200$/);
    expect(requestStates(dbFile)).to.deep.equal({ received: 1 });

    await upstream.setMode('normal');
    estRa = await serveEstRa(configFile);
    await eventually(() => (requestStates(dbFile).issued === 1 ? true : undefined));
    const retry = await enroll(estRa.url);
    expect(retry.stdout).to.match(/\n200$/);
    expect((await upstream.stats()).issued).to.equal(1);
    // It was in flight when est-ra died: the upstream may have issued it then too. Recorded, and logged by id.
    const [request] = readRequests(dbFile);
    expect(request).to.include({ state: 'issued', possibly_issued_twice_upstream: 1 });
    const warned = estRa
      .output()
      .split('\n')
      .filter((line) => line.includes('the upstream may hold a second certificate'))
      .map((line) => JSON.parse(line) as { id: string; serial?: string });
    expect(warned.map((line) => line.id)).to.deep.equal([request!.id, request!.id]);
    expect(warned[1]!.serial).to.equal(request!.serial);

    // Once recorded as issued, a request is final: another restart forwards nothing.
    await estRa.stop('SIGKILL');
    estRa = await serveEstRa(configFile);
    expect((await enroll(estRa.url)).stdout).to.match(/\n200$/);
    expect((await upstream.stats()).issued).to.equal(1);
    expect(requestStates(dbFile)).to.deep.equal({ issued: 1 });

    // Started while the upstream is down, est-ra serves /cacerts from its store.
    await upstream.stop();
    await estRa.stop('SIGTERM');
    estRa = await serveEstRa(configFile);
    const cacerts = await run('curl', ['-sS', '--cacert', rootCa, '-o', '/dev/null', '-w', '%{http_code}', `${estRa.url}/.well-known/est/cacerts`]);
    expect(cacerts.stdout).to.equal('200');
  });
});

describe('RA identity problems are start-up errors that name the profile', function () {
  this.timeout(30_000);

  it('fail a wrong PKCS#12 passphrase stops est-ra serve with a one-line reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'est-ra-p12-'));
    try {
      const identity = await makeRaIdentity(dir);
      const stateDir = join(dir, 'ra');
      const { configFile } = await initDemoState(stateDir);
      writeFileSync(join(dir, 'wrong.pass'), 'not-the-passphrase\n');
      writeFileSync(
        configFile,
        editProfile(readFileSync(configFile, 'utf8'), 'demo', (profile) => {
          profile.upstream = 'est';
          profile.est = {
            url: 'https://127.0.0.1:1/.well-known/est',
            ra_pkcs12: identity.p12File,
            ra_pkcs12_passphrase: { file: join(dir, 'wrong.pass') },
            trust_anchors: [identity.caFile],
          };
        }),
      );
      const result = await run(process.execPath, [CLI, 'serve', '--config', configFile]);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/^est-ra: profiles\.demo\.est: cannot load the RA identity: .*passphrase.*\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
