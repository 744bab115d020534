/**
 * The TunDevice schema: one TypeBox definition that validates YAML files and generates the CRDs.
 */
export * from './tundevice.js';
export * from './tunnodestate.js';
export * from './tundevice-status.js';
export * from './problem.js';
export { validateTunDevice, type TunDeviceValidation, type ValidateOptions, type DeclarationContext } from './validate.js';
export { parseDeclarations, locate, DEFAULT_YAML_LIMITS, type Declaration, type FieldLocation, type ParsedFile, type ParseOptions, type YamlLimits } from './yaml-declarations.js';
export { crdFiles, renderCrds, tunDeviceCrd, tunNodeStateCrd, toStructural, REGENERATE_COMMAND } from './crd.js';
export { ifnameProblem, IFNAME_MAX_BYTES } from './ifname.js';
export { parseMac } from './mac.js';
export * as ip from './ip.js';
