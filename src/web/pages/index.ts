/* Every page of the app, in the navigation's order. */

import type { Page } from '../page.js';
import decisions from './decisions.js';
import flows from './flows.js';
import apps from './apps.js';
import policy from './policy.js';
import rules from './rules.js';
import metrics from './metrics.js';
import characterize from './characterize.js';
import tc from './tc.js';
import rsvp from './rsvp.js';

export const PAGES: Page[] = [flows, decisions, apps, policy, rules, metrics, characterize, tc, rsvp];
