export { loadConfig, type ServerConfig } from './config.js';
export { startServer, type RunningServer } from './server.js';
export { createLogger } from './logger.js';
