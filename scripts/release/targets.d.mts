// Types of targets.mjs for the TypeScript tests.

export type ReleaseArch = 'arm64' | 'armv7' | 'x64';

export interface ReleaseTarget {
  arch: ReleaseArch;
  npmPackage: string;
  node: string;
  gypArch: string;
  triple: string;
  elfClass: 32 | 64;
  elfMachine: number;
  aptToolchain: readonly string[];
  qemu: string | null;
  sysrootPackages: readonly string[];
  note: string;
}

export declare const TARGETS: Readonly<Record<ReleaseArch, ReleaseTarget>>;
export declare function nativeTarget(): ReleaseArch | null;
export declare const LAYOUT: Readonly<{
  launcher: string;
  bundle: string;
  nodeModules: string;
  node: string;
  profiles: string;
  config: string;
  versions: string;
  readme: string;
  sums: string;
}>;
export declare const OPTIONAL_FILES: readonly { path: string; mode: number }[];
export declare function releaseName(version: string, arch: string): string;
