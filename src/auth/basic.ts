/** Credentials from an HTTP Basic Authorization header (RFC 7617). */
export interface BasicCredentials {
  readonly username?: string;
  readonly password: string;
}

/**
 * Reads `Authorization: Basic ...`. The username is optional: DigiCert's own
 * curl examples send base64 of the bare passcode with no colon at all, and
 * `curl --user :PASSCODE` sends an empty username.
 * Returns undefined when there is no Basic header; null when it is malformed.
 */
export function parseBasicAuthorization(header: string | undefined): BasicCredentials | undefined | null {
  if (header === undefined) return undefined;
  const match = /^Basic[ \t]+([A-Za-z0-9+/=_-]+)[ \t]*$/i.exec(header);
  if (!match) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  if (decoded.length === 0) return null;
  const colon = decoded.indexOf(':');
  if (colon < 0) return { password: decoded };
  const username = decoded.slice(0, colon);
  return { username: username.length > 0 ? username : undefined, password: decoded.slice(colon + 1) };
}
