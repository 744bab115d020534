/** The CLI's commands, composed here only: no command imports another (test/controller/layout.test.ts). */
import type { RegisterCommand } from '../context.js';
import { registerApply } from './apply.js';
import { registerCrds } from './crds.js';
import { registerMonitor } from './monitor.js';
import { registerPlan } from './plan.js';
import { registerRun } from './run.js';
import { registerState } from './state.js';
import { registerValidate } from './validate.js';

/** Every command of the CLI, in the order `--help` lists them. */
export const commands: RegisterCommand[] = [registerApply, registerPlan, registerRun, registerState, registerMonitor, registerValidate, registerCrds];
