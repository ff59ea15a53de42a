/**
 * Errors of the config component. Every problem found in a file is reported as
 * `file:line:col: what is wrong`, the shape nats-server uses, so editors and people can jump to it.
 */

/** Where a token sits in a config file. Lines and columns are 1-based. */
export interface SourcePos {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export function formatPos(pos: SourcePos): string {
  return `${pos.file}:${pos.line}:${pos.col}`;
}

/** `file:line`, the short form used in warnings and RawBlock.where. */
export function formatWhere(pos: SourcePos): string {
  return `${pos.file}:${pos.line}`;
}

/**
 * A fatal problem with the configuration. `problems` holds each finding on its own
 * (`file:line:col: reason`); the message is all of them, one per line.
 */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'));
    this.name = 'ConfigError';
    this.problems = list;
  }

  static at(pos: SourcePos, reason: string): ConfigError {
    return new ConfigError(`${formatPos(pos)}: ${reason}`);
  }
}

/**
 * A bad command line. The message holds the flag package's complaint followed by the usage
 * text, as Go's flag package prints them; exitCode is Go's (2).
 */
export class CliError extends ConfigError {
  readonly exitCode: number;
  /** The complaint alone, without the usage text. */
  readonly reason: string;

  constructor(reason: string, usageText?: string, exitCode = 2) {
    super(usageText === undefined ? reason : `${reason}\n\n${usageText}`);
    this.name = 'CliError';
    this.reason = reason;
    this.exitCode = exitCode;
  }
}
