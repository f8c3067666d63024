#!/usr/bin/env node
// `kernex-agent sim ...` runs the fleet simulator; anything else is the device runtime.
if (process.argv[2] === 'sim') await import('../dist/sim/main.js');
else await import('../dist/main.js');
