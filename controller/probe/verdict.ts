/** What one probe attempt concluded: passed or not, and the kernel's answer in words. */
export interface ProbeVerdict {
  passed: boolean;
  message: string;
}
