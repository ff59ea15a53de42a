// Types of the parts of pack.mjs the TypeScript tests use.

/** The bin/nats-edge launcher script. */
export declare const LAUNCHER: string;
export declare function listFiles(dir: string, base?: string): string[];
export declare function sha256File(path: string): string;
export declare function sha256sums(dir: string, files: string[]): string;
