// Types of elf.mjs for the TypeScript tests.

export declare const EM_ARM: 40;
export declare const EM_X86_64: 62;
export declare const EM_AARCH64: 183;

export interface ElfHeader {
  elfClass: 32 | 64;
  machine: number;
}
export interface SymbolRequirements {
  /** Newest GLIBC_x.y required, e.g. '2.34'; null when none. */
  glibc: string | null;
  /** Newest GLIBCXX_x.y.z required, e.g. '3.4.29'; null when none. */
  glibcxx: string | null;
}
export interface KnownSystem {
  name: string;
  glibc: string;
  glibcxx: string;
}
export interface SystemVerdict {
  name: string;
  ok: boolean;
  missing: string[];
}

export declare function elfHeader(bytes: Uint8Array): ElfHeader | null;
export declare function readElfHeader(path: string): ElfHeader | null;
export declare function compareVersions(a: string, b: string): number;
export declare function requiredSymbolVersions(objdumpPrivateHeaders: string): SymbolRequirements;
export declare function neededLibraries(objdumpPrivateHeaders: string): string[];
export declare function debianPackagesFor(libraries: string[]): string[];
export declare function newerRequirements(a: SymbolRequirements, b: SymbolRequirements): SymbolRequirements;
export declare const KNOWN_SYSTEMS: readonly KnownSystem[];
export declare function systemsVerdict(required: SymbolRequirements): SystemVerdict[];
