import { startApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';

/** Upper bound for a graceful stop; past it the process exits 1 rather than hang. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`hookbus: ${error.message}\n`);
    process.exit(1);
  }
}

const app = await startApp(configOrExit(), {
  // Another deployment's queues: going on would split the events between the two, silently.
  onDeploymentConflict: (conflict) => {
    process.stderr.write(`hookbus: ${conflict.message}\n`);
    process.exit(1);
  },
});
let stopping = false;

async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  app.logger.info({ signal }, 'shutting down');
  setTimeout(() => {
    app.logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'graceful shutdown took too long; exiting');
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
  try {
    await app.stop();
    process.exit(0);
  } catch (error) {
    app.logger.error({ err: error }, 'shutdown failed');
    process.exit(1);
  }
}

process.once('SIGTERM', (signal) => void shutdown(signal));
process.once('SIGINT', (signal) => void shutdown(signal));
