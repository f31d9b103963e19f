// The scheduler's process: configuration first, then everything else (wiring.ts).
import { runMain } from '@lapis/platform';
import { startScheduler } from './wiring';
import { loadSchedulerConfig } from './config';

runMain(() => startScheduler(loadSchedulerConfig()));
