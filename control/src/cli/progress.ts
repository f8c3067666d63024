import cliProgress from 'cli-progress';

/** A progress bar on stderr, drawn only when stderr is a terminal (pipes and logs stay clean). */
export interface Progress {
  update(value: number, total?: number, payload?: Record<string, string>): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

export function progressBar(format: string, total: number, payload: Record<string, string> = {}): Progress {
  if (!process.stderr.isTTY) return NONE;
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format, hideCursor: true, clearOnComplete: false, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, payload);
  return {
    update(value, newTotal, extra) {
      if (newTotal !== undefined) bar.setTotal(newTotal);
      bar.update(value, extra);
    },
    stop: () => bar.stop(),
  };
}
