/* Every page of the app, in the navigation's order. */

import type { Page } from '../page.js';
import decisions from './decisions.js';
import flows from './flows.js';
import policy from './policy.js';

export const PAGES: Page[] = [flows, decisions, policy];
