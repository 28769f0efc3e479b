// What a `--zone` may be: empty (no zone) or a Kubernetes label value, the form
// `topology.kubernetes.io/zone` takes under the operator. Checked at start so a typo fails loudly
// instead of silently putting a member in a zone of its own (which would skew zone spread).

/** Kubernetes label values: at most 63 characters, alphanumerics with `-`, `_`, `.` inside. */
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

/** Throws a RangeError naming the rule unless `zone` is empty or a valid label value. */
export function validateZoneName(zone: string): void {
  if (!LABEL_VALUE.test(zone)) {
    throw new RangeError(
      `--zone must be empty or a Kubernetes label value (at most 63 characters: letters, digits, '-', '_', '.', starting and ending with a letter or digit); got ${JSON.stringify(zone)}`,
    );
  }
}
