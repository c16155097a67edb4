import { pino, type Logger } from "pino";

/** The process logger: structured JSON lines on stdout, one `role` field on every line. */
export function createLogger(level: string, role: string): Logger {
  return pino({
    level,
    base: { role, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
