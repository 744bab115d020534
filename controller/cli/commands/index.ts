import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { registerApply } from './apply.js';
import { registerCrds } from './crds.js';
import { registerMonitor } from './monitor.js';
import { registerPlan } from './plan.js';
import { registerRun } from './run.js';
import { registerState } from './state.js';
import { registerValidate } from './validate.js';

export type RegisterCommand = (program: Command, ctx: CommandContext) => void;

/** Every command of the CLI, in the order `--help` lists them. */
export const commands: RegisterCommand[] = [registerApply, registerPlan, registerRun, registerState, registerMonitor, registerValidate, registerCrds];
