/* Every page of the app, in the navigation's order. */

import type { Page } from '../page.js';
import decisions from './decisions.js';
import flows from './flows.js';

export const PAGES: Page[] = [flows, decisions];
