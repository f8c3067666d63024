export { SimulationError } from '../errors.js';
export { runSimulation, DEFAULTS as SIMULATION_DEFAULTS, type Simulation, type SimulationOptions, type SimulationStats } from './simulation.js';
export { SimulatedInstaller, type SimInstallerOptions } from './sim-installer.js';
export { SimulatedMetrics } from './sim-metrics.js';
export { KeyPool, defaultKeyCacheDir } from './key-pool.js';
export { parseSimArgs, summaryLine, SIM_USAGE } from './args.js';
