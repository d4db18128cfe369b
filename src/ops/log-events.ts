/** Log messages as constants, so journald queries and alerts can rely on them. */
export const LOG_EVENT = {
  request: 'est request',
  internalError: 'internal error',
  listening: 'listening',
  stopping: 'stopping',
  reloaded: 'configuration reloaded',
  reloadFailed: 'reload failed; still serving the previous configuration',
  startFailed: 'start failed',
  clientError: 'client connection error',
  upstreamUnavailable: 'upstream unavailable',
  upstreamAuthFailed: "upstream rejected est-ra's credentials",
  upstreamRecovered: 'upstream reachable again',
  requestQueued: 'request queued for the upstream',
  requestsRequeued: 'interrupted requests queued again',
  retryFailed: 'forwarding a queued request failed',
  revocationUnknown: 'revocation status unknown; allowed by soft_fail',
} as const;
