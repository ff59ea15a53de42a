// Command-line parsing shared by the bench scripts: the same value checks, --help and exit
// codes everywhere, and the flags npm run bench passes to every script defined once.

/** Flags several scripts take, with the same meaning and the same option name everywhere. */
const COMMON = {
  '--rounds': (o, take) => (o.rounds = take.num()),
  '--only': (o, take) => (o.only = take.kind()),
  '--quick': (o) => (o.quick = true),
  '--json': (o, take) => (o.json = take.str()),
  '--markdown': (o, take) => (o.markdown = take.str()),
  '--cpu-prof': (o, take) => (o.cpuProf = take.str()),
  '--no-build': (o) => (o.build = false),
  '--edge-bundle': (o, take) => (o.edgeBundle = take.str()),
};

/**
 * The options of a bench script from process.argv. `common` names the COMMON flags it takes;
 * `flags` maps its own flags (or replaces a common one) to `(o, take) => ...`, where
 * take.num(min = 1), take.str() and take.kind() (nats-server | edge) read the flag's value.
 * --help prints `usage` and exits 0; a bad argument is printed and exits 2. With
 * `ignoreUnknown`, an unknown --flag (and the value after it) is skipped with a warning:
 * run-all.mjs passes its shared flags to every script.
 */
export function readArgs({ script, usage, common = [], flags = {}, ignoreUnknown = false }) {
  const handlers = { ...Object.fromEntries(common.map((f) => [f, COMMON[f]])), ...flags };
  try {
    return parse(process.argv.slice(2), { script, usage, handlers, ignoreUnknown });
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
}

function parse(argv, { script, usage, handlers, ignoreUnknown }) {
  const o = { build: true, quick: false };
  let i = 0;
  const str = () => {
    i++;
    if (argv[i] === undefined) throw new Error(`${argv[i - 1]} needs a value`);
    return argv[i];
  };
  const take = {
    str,
    num(min = 1) {
      const raw = str();
      const v = Number(raw);
      if (!Number.isInteger(v) || v < min) throw new Error(`${argv[i - 1]} needs ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got ${raw}`);
      return v;
    },
    kind() {
      const k = str();
      if (k === 'edge' || k === 'nats-edge') return 'nats-edge';
      if (k === 'nats-server') return 'nats-server';
      throw new Error(`--only takes nats-server or edge, got ${k}`);
    },
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(usage);
      process.exit(0);
    }
    const handle = Object.hasOwn(handlers, a) ? handlers[a] : undefined;
    if (handle !== undefined) handle(o, take);
    else if (ignoreUnknown && a.startsWith('--')) {
      const takesValue = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--');
      process.stderr.write(`${script}: ignoring unknown option ${a}${takesValue ? ` ${argv[i + 1]}` : ''}\n`);
      if (takesValue) i++;
    } else throw new Error(`${ignoreUnknown ? 'unexpected argument' : 'unknown option'} ${a}\n${usage}`);
  }
  return o;
}
