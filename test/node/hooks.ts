/** Root hooks of the real-node tests: one stack for the whole run (see realStackHooks). */
import { realStackHooks } from './stack.ts';

export const mochaHooks = realStackHooks;
