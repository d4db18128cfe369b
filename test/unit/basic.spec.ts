import { expect } from 'chai';
import { parseBasicAuthorization } from '../../src/auth/basic.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('HTTP Basic parsing (RFC 7617, username optional)', () => {
  it('ok user:pass', () => expect(parseBasicAuthorization(`Basic ${b64('line1:s3cret')}`)).to.deep.equal({ username: 'line1', password: 's3cret' }));
  it("ok DigiCert's bare passcode with no colon", () =>
    expect(parseBasicAuthorization(`Basic ${b64('wTvQtkUGcU81AhVmodGE')}`)).to.deep.equal({ password: 'wTvQtkUGcU81AhVmodGE' }));
  it('ok empty username (curl --user :pass)', () =>
    expect(parseBasicAuthorization(`Basic ${b64(':pass')}`)).to.deep.equal({ username: undefined, password: 'pass' }));
  it('ok a colon inside the password', () => expect(parseBasicAuthorization(`Basic ${b64('u:a:b')}`)).to.deep.equal({ username: 'u', password: 'a:b' }));
  it('ok scheme in any case', () => expect(parseBasicAuthorization(`basic ${b64('u:p')}`)).to.deep.equal({ username: 'u', password: 'p' }));
  it('ok no header', () => expect(parseBasicAuthorization(undefined)).to.equal(undefined));
  it('fail other scheme', () => expect(parseBasicAuthorization('Bearer abc')).to.equal(null));
  it('fail empty credentials', () => expect(parseBasicAuthorization('Basic ')).to.equal(null));
});
