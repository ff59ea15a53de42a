// Types of object-wrap.mjs for the TypeScript tests.

export interface ObjectWrapDonor {
  npmPackage: string;
  version: string;
}
export declare const OBJECT_WRAP_HEADER: string;
export declare const OBJECT_WRAP_DONORS: Readonly<Record<string, ObjectWrapDonor>>;
export declare function hasCleanupHooks(headerText: string): boolean;
export declare function objectWrapDonor(runtime: { dir: string; version: string }): ObjectWrapDonor | null;
