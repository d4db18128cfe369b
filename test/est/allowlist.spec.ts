import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { latestRefusal } from '../helpers/admin-cli.js';

/** Real clients from several loopback addresses (curl --interface 127.0.x.y) against one allowlist. */
describe('allowed_ip_addresses: checked first, 403 before any challenge', () => {
  let ra: TestEstRa;
  let device: KeyAndCsr;
  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.allowed_ip_addresses = ['127.0.0.2', '127.0.1.0-127.0.1.10', '127.0.2.*', '127.0.3.0/255'];
        }),
    });
    device = await opensslCsr(ra.dir, 'allow-device');
  });
  after(async () => ra.close());

  const enrollFrom = (address: string, withPasscode = true): ReturnType<typeof curl> =>
    curl(ra, '/simpleenroll', [
      '--interface',
      address,
      ...(withPasscode ? ['--user', `:${ra.passcode}`] : []),
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${device.csrPemFile}`,
    ]);

  for (const address of ['127.0.0.2', '127.0.1.0', '127.0.1.10', '127.0.2.77', '127.0.3.200']) {
    it(`ok ${address} enrolls`, async () => {
      expect((await enrollFrom(address)).status).to.equal(200);
    });
  }

  for (const address of ['127.0.0.1', '127.0.1.11', '127.0.4.1']) {
    it(`fail ${address} gets 403 with the reason, even without credentials (no challenge)`, async () => {
      const answer = await enrollFrom(address, false);
      expect(answer.status).to.equal(403);
      expect(answer.body).to.equal(`403 client address ${address} not allowed by profile 'demo'\n`);
      expect(answer.headers).not.to.match(/WWW-Authenticate/i);
    });
  }

  it('fail /cacerts from outside the list is refused too', async () => {
    expect((await curl(ra, '/cacerts', ['--interface', '127.0.0.1'])).status).to.equal(403);
  });

  it('ok the refusal is counted with the address and the reason', async () => {
    await enrollFrom('127.0.4.9');
    expect(await latestRefusal(ra)).to.include({
      status: 403,
      peer_address: '127.0.4.9',
      code: 'EST_ADDRESS_NOT_ALLOWED',
      last_reason: "client address 127.0.4.9 not allowed by profile 'demo'",
    });
  });
});
