import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from './test-server.js';

/** A real server for `kernex` CLI tests, with an empty config home and the env that points the CLI at it. */
export interface CliServer {
  server: TestServer;
  /** XDG_CONFIG_HOME of the CLI runs: empty, so no developer config leaks in. */
  configHome: string;
  /** KERNEX_URL, KERNEX_API_KEY (admin) and XDG_CONFIG_HOME for `runCli`. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startCliServer(serverEnv: Record<string, string> = {}): Promise<CliServer> {
  const server = await startTestServer(serverEnv);
  const configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-cli-'));
  return {
    server,
    configHome,
    env: { KERNEX_URL: server.httpUrl, KERNEX_API_KEY: server.adminKey, XDG_CONFIG_HOME: configHome },
    async stop() {
      await server.stop();
      await fs.rm(configHome, { recursive: true, force: true });
    },
  };
}
