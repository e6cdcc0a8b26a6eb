/** What a credential-like value is shown as, wherever it is shown. */
export const REDACTED = '[redacted]';

/** Custom header names whose values look like credentials: never shown, in answers or the delivery log. */
const SENSITIVE_HEADER = /auth|token|secret|key|password|passwd|cookie|signature|session|credential/i;

export const isSensitiveHeader = (name: string): boolean => SENSITIVE_HEADER.test(name);
