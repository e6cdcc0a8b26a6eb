import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface ConnectionRow {
  name: string;
  /** [key, type, value] triples; `connection_name` is the name the client gave itself. */
  client_properties: [string, string, unknown][];
}

const nameOf = (row: ConnectionRow) => row.client_properties.find(([key]) => key === 'connection_name')?.[2];

/** Broker-side names (`ip:port -> ip:port`) of the connections a client opened as `connectionName`. */
export async function connectionsOf(connectionName: string): Promise<string[]> {
  const { stdout } = await run('rabbitmqctl', [
    'list_connections',
    'name',
    'client_properties',
    '--formatter',
    'json',
    '--quiet',
  ]);
  return (JSON.parse(stdout || '[]') as ConnectionRow[]).filter((c) => nameOf(c) === connectionName).map((c) => c.name);
}

/** Has the broker force-close the connections of one client, as an operator or a failover would. */
export async function closeConnection(connectionName: string): Promise<number> {
  const names = new Set(await connectionsOf(connectionName));
  // close_connection takes the Erlang pid, which only the tabular listing prints in the form it accepts.
  const { stdout } = await run('rabbitmqctl', ['list_connections', 'pid', 'name', '--no-table-headers', '--quiet']);
  const pids = stdout
    .split('\n')
    .map((line) => line.split('\t'))
    .filter(([, name]) => name !== undefined && names.has(name))
    .map(([pid]) => pid!);
  for (const pid of pids) await run('rabbitmqctl', ['close_connection', pid, 'closed by a hookbus test']);
  return pids.length;
}
