// The scheduler's process: configuration first, then everything else (app.ts).
import { runMain } from '@lapis/platform';
import { startScheduler } from './app';
import { loadSchedulerConfig } from './config';

runMain(() => startScheduler(loadSchedulerConfig()));
