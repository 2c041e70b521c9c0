/** Validation of DynamicStorage objects: pure functions shared by the controller and the offline command. */
export { validateDynamicStorage, withDefaults, type ValidationContext } from './validate.ts';
export { checkAgainstCluster, checkSingleManager, clusterVolumeSize, type CnpgCluster, type CnpgStorageConfiguration } from './cluster.ts';
export {
  ValidationCodes, formatProblem, sortProblems, renderProblemsMessage, validCondition, validConditionType, validReason, invalidPolicyReason,
  maxConditionMessageLength, type ValidationCode, type ValidationProblem, type FieldErrorType, type ValidConditionFields,
} from './problems.ts';
export { applySchemaDefaults, validateAgainstSchema, celRulesOf, incompleteValidationMessage } from './schema.ts';
export { celRuleImplementations } from './cel-rules.ts';
export { compareQuantities } from './quantity-exact.ts';
