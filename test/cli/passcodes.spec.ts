import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { mustRun, run } from '../helpers/run.js';
import { adminCli } from '../helpers/admin-cli.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** The admin's passcode commands against a running est-ra, checked with curl as the device. */
describe('est-ra passcodes: create, list, disable, enable, rotate, limits', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  const cli = (...args: string[]): Promise<string> => mustRun(process.execPath, [CLI, 'passcodes', ...args, '--config', join(ra.dir, 'config.yaml')]);
  const create = async (...args: string[]): Promise<{ id: string; passcode: string }> => {
    const printed = await cli('create', '--policy', 'demo', ...args);
    const match = /^Passcode (\S+) for policy demo \(shown once\): (\S+)$/m.exec(printed);
    return { id: match![1]!, passcode: match![2]! };
  };
  const enroll = async (passcode: string, name: string, username = ''): Promise<number> => {
    const device = await opensslCsr(ra.dir, name);
    return (await curl(ra, '/simpleenroll', ['--user', `${username}:${passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status;
  };

  before(async () => {
    ra = await startEstRa();
  });
  after(async () => ra.close());

  it('ok list shows uses and status, never a secret', async () => {
    const { id, passcode } = await create('--max-uses', '2', '--description', 'line 3 sensors');
    expect(await enroll(passcode, 'pc-list')).to.equal(200);
    const listed = await cli('list', '--policy', 'demo');
    expect(listed).to.match(/^ID +POLICY +USERNAME +USES +EXPIRES +STATUS +DESCRIPTION$/m);
    expect(listed).to.match(new RegExp(`^${id} +demo +1/2 +never +enabled +line 3 sensors$`, 'm'));
    expect(listed).not.to.contain(passcode);
    const json = (await cli('list', '--json'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string>);
    expect(json.find((row) => row.id === id)).to.include({ uses: '1/2', status: 'enabled' });
  });

  it('ok disable refuses it at once, enable brings it back', async () => {
    const { id, passcode } = await create();
    await cli('disable', id);
    expect(await enroll(passcode, 'pc-disabled')).to.equal(401);
    await cli('enable', id);
    expect(await enroll(passcode, 'pc-enabled')).to.equal(200);
  });

  it('ok rotate: the old secret stops working, the new one works', async () => {
    const { id, passcode } = await create();
    const rotated = /rotated \(shown once\): (\S+)$/m.exec(await cli('rotate', id))![1]!;
    expect(await enroll(passcode, 'pc-old')).to.equal(401);
    expect(await enroll(rotated, 'pc-new')).to.equal(200);
  });

  it('fail an expired passcode', async () => {
    // A past --expires is refused, so the passcode expires tomorrow and est-ra's clock is three days ahead (past its end in any time zone).
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const later = await startEstRa({ now: () => new Date(Date.now() + 3 * 86_400_000) });
    try {
      const configFile = join(later.dir, 'config.yaml');
      const printed = await mustRun(process.execPath, [CLI, 'passcodes', 'create', '--policy', 'demo', '--expires', tomorrow, '--config', configFile]);
      const passcode = /\(shown once\): (\S+)/.exec(printed)![1]!;
      const device = await opensslCsr(later.dir, 'pc-expired');
      const answer = await curl(later, '/simpleenroll', ['--user', `:${passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
      expect(answer.status).to.equal(401);
      const [latest] = await adminCli(configFile).json<{ reason: string }>('requests', 'list', '--limit', '1');
      expect(latest?.reason).to.match(/^authentication failed: passcode \S+ is expired$/);
    } finally {
      await later.close();
    }
  });

  it('ok a race for the last use: of eight concurrent enrollments exactly one gets it', async () => {
    const { passcode } = await create('--max-uses', '1');
    const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => enroll(passcode, `pc-race-${i}`)));
    expect(statuses.filter((s) => s === 200)).to.have.length(1);
    expect(statuses.filter((s) => s === 401)).to.have.length(7);
    expect(await cli('list', '--policy', 'demo')).to.match(/ 1\/1 +never +used up/);
  });

  it('fail bad arguments get a one-line reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'est-ra-pc-'));
    try {
      const result = await run(process.execPath, [CLI, 'passcodes', 'create', '--policy', 'demo', '--max-uses', '0', '--config', join(ra.dir, 'config.yaml')]);
      expect(result.code).not.to.equal(0);
      expect(result.stderr).to.contain('must be a whole number of uses, 1 or more');
      const unknown = await run(process.execPath, [CLI, 'passcodes', 'disable', 'no-such-id', '--config', join(ra.dir, 'config.yaml')]);
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.equal('est-ra: no passcode no-such-id\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
