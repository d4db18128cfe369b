import { networkInterfaces } from 'node:os';

function urlOf(host: string, port: number): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The address est-ra is bound to, as a URL (`https://0.0.0.0:8443` when it
 * listens on every address), and the URLs a client can reach it by: the
 * bound address itself, or for a wildcard the loopback address and each
 * interface's (IPv4 for 0.0.0.0, IPv4 and IPv6 for ::; link-local IPv6 left
 * out, it needs a zone a URL cannot carry).
 */
export function listenUrls(host: string, port: number): { readonly bound: string; readonly reachable: readonly string[] } {
  const bound = urlOf(host, port);
  if (host !== '0.0.0.0' && host !== '::') return { bound, reachable: [bound] };
  let interfaces: ReturnType<typeof networkInterfaces>;
  try {
    interfaces = networkInterfaces();
  } catch {
    // A sandbox without netlink (systemd RestrictAddressFamilies without AF_NETLINK) cannot list them: say only where it is bound.
    return { bound, reachable: [] };
  }
  const addresses = Object.values(interfaces)
    .flat()
    .filter((a) => a !== undefined)
    .filter((a) => (a.family === 'IPv4' || host === '::') && !a.address.startsWith('fe80:'))
    .sort((a, b) => Number(b.internal) - Number(a.internal))
    .map((a) => a.address);
  return { bound, reachable: [...new Set(addresses)].map((address) => urlOf(address, port)) };
}
