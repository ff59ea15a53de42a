/** The console page's CSS: light or dark as the system says, one column on a phone. */
export const PAGE_STYLE = String.raw`
:root{--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--dim:#5d6670;--line:#dde1e6;--ok:#1a7f37;--warn:#b35900;--bad:#c62828;--in:#1f6feb;--out:#d9480f;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#101316;--card:#181c20;--fg:#e6e9ec;--dim:#98a1ab;--line:#2c3238;--ok:#4ac26b;--warn:#e3a33b;--bad:#ff6b6b;--in:#58a6ff;--out:#ff8f5a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.3rem 1rem;padding:.8rem 1rem;background:var(--card);border-bottom:1px solid var(--line)}
h1{font-size:1.25rem;margin:0;word-break:break-all}
h2{font-size:.8rem;letter-spacing:.06em;text-transform:uppercase;color:var(--dim);margin:0 0 .6rem}
.meta{color:var(--dim);font-size:.9rem}
.meta b{color:var(--fg);font-weight:600}
.badge{margin-left:auto;padding:.15rem .6rem;border-radius:1rem;font-size:.85rem;font-weight:600;background:var(--line);color:var(--dim)}
.badge[data-value=live]{background:var(--ok);color:#fff}
body.stale main{opacity:.55}
main{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1rem;padding:1rem;max-width:1200px;margin:0 auto}
section{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.9rem 1rem;min-width:0}
.wide{grid-column:1/-1}
@media (max-width:700px){main{grid-template-columns:minmax(0,1fr);padding:.5rem;gap:.5rem}.wide{grid-column:auto}}
@media (max-width:480px){th.addr,[data-testid=talker-address]{display:none}}
[data-testid=problems] p{margin:.2rem 0}
.problem{padding:.45rem .7rem;margin:.3rem 0;border-left:4px solid var(--bad);background:color-mix(in srgb,var(--bad) 10%,transparent);border-radius:.25rem}
.none{color:var(--ok);font-weight:600}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(7.5rem,1fr));gap:.5rem;margin-bottom:.6rem}
.tile{border:1px solid var(--line);border-radius:.4rem;padding:.4rem .6rem}
.tile .k{display:block;color:var(--dim);font-size:.78rem}
.tile b{font-size:1.2rem;font-variant-numeric:tabular-nums}
.tile small{color:var(--dim)}
.kv{display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem;margin:0}
.kv dt{color:var(--dim)}
.kv dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.bar{height:.35rem;background:var(--line);border-radius:.2rem;overflow:hidden;margin:.1rem 0 .3rem}
.bar i{display:block;height:100%;width:0;background:var(--ok)}
.bar i.warn{background:var(--warn)}
.bar i.bad{background:var(--bad)}
[hidden]{display:none!important}
.plot{position:relative}
.chart{width:100%;height:130px;display:block;border:1px solid var(--line);border-radius:.3rem}
.ax{position:absolute;font-size:.72rem;color:var(--dim);pointer-events:none}
.ax.top{top:.15rem;left:.4rem}
.ax.left{bottom:.15rem;left:.4rem}
.ax.right{bottom:.15rem;right:.4rem}
.chart path{vector-effect:non-scaling-stroke}
.chart .grid{stroke:var(--line);stroke-width:1}
.chart .in{stroke:var(--in);fill:none;stroke-width:1.5}
.chart .out{stroke:var(--out);fill:none;stroke-width:1.5}
.legend{display:flex;gap:1rem;font-size:.82rem;color:var(--dim);margin:.3rem 0 .7rem}
.legend i{display:inline-block;width:.8rem;height:.2rem;vertical-align:middle;margin-right:.3rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid var(--line);white-space:nowrap}
th{color:var(--dim);font-weight:500}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.off{color:var(--dim);font-style:italic}
.uplink{border:1px solid var(--line);border-radius:.4rem;padding:.5rem .7rem;margin:.4rem 0}
.uplink .name{font-weight:600;overflow-wrap:anywhere}
.state{font-weight:700;text-transform:uppercase;font-size:.8rem;padding:.05rem .45rem;border-radius:.6rem;color:#fff;background:var(--dim)}
.state[data-value=up]{background:var(--ok)}
.state[data-value=down]{background:var(--bad)}
.state[data-value=connecting]{background:var(--warn)}
.err{color:var(--bad);font-size:.85rem;overflow-wrap:anywhere}
footer{padding:1rem;text-align:center;font-size:.85rem;color:var(--dim)}
footer a{color:inherit;margin:0 .4rem;display:inline-block}
`;
