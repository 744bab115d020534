export default function globalSetup(): void {
  // One id per run so the teardown can find every namespace this run made, whatever worker made it.
  process.env.TUNKEEPER_TEST_RUN ??= `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`;
}
