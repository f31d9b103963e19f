// Shared by the platform's tests: the run's NATS (started once by tools/testenv's mocha
// hooks), a quiet logger, and names unique to one test so tests never see each other's state.
import { randomUUID } from 'node:crypto';
import { createLogger } from '../src/logging';

export const log = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');

export function natsUrl(): string {
  const url = process.env.LAPIS_TEST_NATS_URL;
  if (!url) throw new Error('LAPIS_TEST_NATS_URL is not set: run the tests through mocha with tools/testenv/dist/src/mocha-hooks.js');
  return url;
}

export const unique = (prefix: string) => `${prefix}_${randomUUID().slice(0, 8)}`.toUpperCase();

export function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = async () => {
      try {
        const value = await check();
        if (value !== undefined && value !== false) return resolve(value);
      } catch (error) {
        if (Date.now() > deadline) return reject(error);
      }
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(attempt, 50);
    };
    void attempt();
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
