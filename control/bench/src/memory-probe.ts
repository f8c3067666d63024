import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Preloaded (`node --import`) into a benchmarked server or broker process, so
 * its memory can be read after a full garbage collection instead of with
 * whatever garbage the last connect storm left: on SIGUSR2 it collects twice
 * (the second pass takes what the first one's finalizers let go), waits for
 * V8 to hand freed pages back, and writes `process.memoryUsage()` as JSON to
 * the file named by BENCH_MEMORY_PROBE_FILE (written whole, then renamed).
 * Bench-only: the server itself has no such hook.
 */
const file = process.env.BENCH_MEMORY_PROBE_FILE;
if (file) {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  process.on('SIGUSR2', () => {
    gc();
    gc();
    setTimeout(() => {
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(process.memoryUsage()));
      fs.renameSync(`${file}.tmp`, file);
    }, 200);
  });
}
