/**
 * Entry point of one TIME_WAIT filler thread, started by fillTimeWait() in
 * bench/lib/time-wait.mjs: opens and closes connections to the sinks named in
 * workerData until the parent posts a message. Running the loop is this
 * file's only purpose, so unlike the library modules it acts on import.
 *
 * @example
 *   new Worker(new URL('./time-wait-filler.mjs', import.meta.url), { workerData: { sinks, offset: 0, batch: 200 } });
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fillLoop } from './time-wait.mjs';

if (parentPort) await fillLoop(workerData, parentPort);
