/** Log messages as constants, so journald queries and alerts can rely on them. */
export const LOG_EVENT = {
  request: 'est request',
  internalError: 'internal error',
  listening: 'listening',
  stopping: 'stopping',
  startFailed: 'start failed',
  clientError: 'client connection error',
} as const;
