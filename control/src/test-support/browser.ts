import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium (`apt-get install chromium`), headless. Without the
 * background-networking flags Chromium opens connections of its own, which
 * this network refuses and which would show up as foreign requests.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.KERNEX_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** A browser context that records every URL it requests and every script error of its pages. */
export interface RecordedContext {
  context: BrowserContext;
  requests: string[];
  /** `STATUS METHOD URL` of every answer of 400 or more. */
  refusals: string[];
  pageErrors: string[];
  newPage(): Promise<Page>;
}

export async function recordedContext(browser: Browser): Promise<RecordedContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const requests: string[] = [];
  const pageErrors: string[] = [];
  const refusals: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  context.on('response', (r) => {
    if (r.status() >= 400) refusals.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  return {
    context,
    requests,
    refusals,
    pageErrors,
    async newPage() {
      const page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(err.message));
      // CSP violations and failed module loads are console errors.
      // (Answers of 400 or more also log "Failed to load resource": those are in `refusals`.)
      page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && pageErrors.push(m.text()));
      return page;
    },
  };
}

/** Signs in on the console's sign-in screen with `apiKey`. */
export async function signIn(page: Page, baseUrl: string, apiKey: string): Promise<void> {
  await page.goto(`${baseUrl}/console/`);
  await page.getByLabel('API key').fill(apiKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}
