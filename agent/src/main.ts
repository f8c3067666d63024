process.stderr.write('kernex-agent: not implemented yet\n');
process.exit(1);
