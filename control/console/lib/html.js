// Preact with htm: tagged templates instead of JSX, so the browser runs our files as
// they are (no transpile step) and the CSP can forbid eval. Preact renders strings as
// text nodes; nothing here ever sets innerHTML, so device data cannot become markup.
import { h, render } from '../vendor/preact.js';
import htm from '../vendor/htm.js';

export const html = htm.bind(h);
export { render };
export { useState, useEffect, useRef, useCallback, useMemo } from '../vendor/preact-hooks.js';
