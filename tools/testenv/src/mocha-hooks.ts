// Mocha global fixtures (`--require tools/testenv/dist/src/mocha-hooks.js`): one NATS with
// JetStream for the whole test run, handed to the tests as LAPIS_TEST_NATS_URL. Docker and
// registries are started by the tests that need them (sharedDocker(), startRegistry()).
import { stopSharedDocker } from './docker.js';
import { startNats, TEST_NATS_URL_ENV, type NatsServer } from './nats.js';

let nats: NatsServer | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  try {
    nats = await startNats();
  } catch (e) {
    // Never skip: every integration test needs it, and a silent skip hides a broken machine.
    throw new Error(`@lapis/testenv: could not start the test run's NATS server: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Always our own fresh server, even if the variable was set: tests may assume an empty store.
  process.env[TEST_NATS_URL_ENV] = nats.url;
}

export async function mochaGlobalTeardown(): Promise<void> {
  // Docker only stops if a test made testenv start dockerd; an engine found running stays.
  await stopSharedDocker();
  await nats?.stop();
  nats = undefined;
  delete process.env[TEST_NATS_URL_ENV];
}
