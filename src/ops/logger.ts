import winston from 'winston';

export type LogFormat = 'auto' | 'json' | 'text';
export type Logger = winston.Logger;

/**
 * JSON lines for journald and log collectors, readable text on a terminal.
 * Never pass it passcodes, Authorization headers or private keys: callers log
 * only the fields they choose, and no request headers are logged wholesale.
 */
export function createLogger(options: { level: string; format: LogFormat; silent?: boolean }): Logger {
  const json = options.format === 'json' || (options.format === 'auto' && !process.stdout.isTTY);
  return winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: json
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.printf(({ timestamp, level, message, ...fields }) => {
            const details = Object.entries(fields)
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ');
            return `${String(timestamp)} ${level} ${String(message)} ${details}`.trimEnd();
          }),
        ),
    transports: [new winston.transports.Console()],
  });
}
