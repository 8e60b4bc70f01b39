#!/usr/bin/env python
"""Render the course: execute every notebook at the `cpu` scale and save it with its outputs, so that a reader sees
every figure and number on opening a notebook, on GitHub or in JupyterLab, without running it.

    python .ci/render.py                 # every notebook, two at a time, then nbdev_clean, README's table and figures
    python .ci/render.py 13_landscape    # some notebooks only
    python .ci/render.py --check         # CI: fail if a notebook changed since its render, is over 1 MB, repeats a figure,
                                         # a claim notebook has no figure, or a claim essay does not open with its verdict

Each notebook runs in its own process with OMP_NUM_THREADS=1 (as `nbdev_test` does in CI), so the printed numbers are
the ones the prose quotes; cells flagged `slow` or `browser` are skipped, as in the test suite. The notebooks read
their networks from the run store, so a render after the test suite trains nothing. `nbs/rendered.json` keeps, per
notebook, a hash of its code cells at the time of its render: `--check` compares it with the notebooks as they are.
Then `bn-course reproduce` (from the same store) writes the claim results, `bn-course report --readme` README's
verdict table, and the figures README shows are copied to `images/`.
"""
import argparse, hashlib, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, IMAGES, RECORD = ROOT/'nbs', ROOT/'images', ROOT/'nbs'/'rendered.json'
SKIP_FLAGS = ('slow', 'browser')
MUST_HAVE_FIGURES = ('04_probes', '10_fig1', '11_noisy', '12_ics', '13_landscape', '14_theory', '15_lp')
README_FIGURES = {   # claim -> (figure index in its saved result, caption)
    'fig1-speed': (0, 'Fig 1a,b at the cpu scale: training and test accuracy with and without BatchNorm, lr 0.1 and 0.5'),
    'lr-range': (0, 'Fig 1 (text): final loss and test accuracy against the learning rate'),
    'landscape-vgg': (0, 'Fig 4: the VGG\'s landscape along the gradient, with and without BatchNorm'),
    'landscape-dln': (0, 'Fig 10: the deep linear network\'s landscape along the gradient'),
    'lp-training': (0, 'Fig 5: training with l1, l2 and l-inf normalization'),
    'lp-landscape-vgg': (0, 'Fig 12: the lp VGGs\' landscape along the gradient'),
}

def code_hash(path: Path) -> str:
    "A hash of a notebook's code cells: what its outputs depend on (prose edits do not make a render stale)."
    nb = json.loads(path.read_text())
    src = '\n\x00'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code')
    return hashlib.sha1(src.encode()).hexdigest()[:16]


def execute_one(name: str):
    "In this process: run notebook `name` as nbdev_test would, and write it back with its outputs."
    from nbdev.test import NBProcessor, FrontmatterProc
    from execnb.shell import CaptureShell
    from execnb.nbio import read_nb, write_nb
    from fastcore.xtras import working_directory
    path = NBS/f'{name}.ipynb'
    raw = read_nb(path)
    nb = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    def skip(cell):
        if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
        d = getattr(cell, 'directives_', {}) or {}
        return d.get('eval:', [''])[0].lower() == 'false' or bool(set(SKIP_FLAGS) & set(d))
    os.environ['IN_TEST'] = '1'                      # as nbdev_test: no progress bars in the outputs
    k = CaptureShell(path, mpl_format='png')        # figures at matplotlib's 100 dpi (execnb's default doubles it)
    with working_directory(path.parent): k.run_all(nb, exc_stop=True, preproc=skip)
    if k.exc: raise SystemExit(f'{name}: a cell raised; not saved\n{k.prettytb(fname=path)}')
    assert len(nb.cells) == len(raw.cells), f'{name}: cell count changed while processing'
    for r, c in zip(raw.cells, nb.cells):
        if r.cell_type == 'code': r.outputs = c.get('outputs', []); r.execution_count = None
    write_nb(raw, path)

def run_notebooks(names, jobs: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    def one(name):
        t, code = time.perf_counter(), code_hash(NBS/f'{name}.ipynb')   # the code this render runs, not what the file holds later
        p = subprocess.run([sys.executable, __file__, '--one', name], env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t
        print(f'{name}: {"ok" if p.returncode == 0 else "FAILED"} in {dt:.0f} s', flush=True)
        if p.returncode: print(p.stdout[-3000:], p.stderr[-6000:], sep='\n')
        return name, p.returncode == 0, dt, code
    with ThreadPoolExecutor(jobs) as ex: res = list(ex.map(one, names))
    return {n: (ok, dt, code) for n, ok, dt, code in res}

HERO = 'fig1-speed'     # README's first figure, above everything: copied like the others, not repeated below

def readme_figures(out: Path) -> str:
    "Copy the figures README shows from a reproduce run in `out` to images/, and the Markdown that shows them (not the hero)."
    IMAGES.mkdir(exist_ok=True)
    lines = []
    if (IMAGES/'playground.gif').exists():
        lines.append("**The playground** (`20_playground`) without a kernel: the learning-rate slider swept across the stored "
                     "learning rates, standard and BN VGG side by side.\n\n![the playground's slider, swept](images/playground.gif)\n")
    for claim, (i, caption) in README_FIGURES.items():
        r = json.loads((out/f'{claim}.json').read_text())
        src = out/r['figure_files'][i]
        shutil.copy(src, IMAGES/f'{claim}.png')
        from bn_course.report import verdict_of
        if claim == HERO: continue
        lines.append(f"**`{claim}`: {verdict_of(r)}.** {caption}.\n\n![{claim}](images/{claim}.png)\n")
    shot = Path(os.environ.get('PLAYGROUND_SHOTS') or '/nonexistent')/'playground_instant.png'
    if shot.exists(): shutil.copy(shot, IMAGES/'playground.png')
    if (IMAGES/'playground.png').exists():
        lines.append("**The playground in JupyterLab**, driven by its browser test: instant mode, drawing "
                     "from the run store's full-length runs.\n\n![the learning-rate playground](images/playground.png)\n")
    return '\n'.join(lines)

def index_from_readme() -> dict:
    """The course home, `nbs/index.ipynb`, with README's prose: each `## ` section of README becomes one markdown cell
    (links rewritten for nbs/), and the home's code cells stay after the section they follow. One text, two places."""
    text = (ROOT/'README.md').read_text().split('\n', 1)[1].lstrip('\n')            # without README's mirror comment
    fix = lambda t: t.replace('](nbs/', '](').replace('](images/', '](../images/')
    parts = [fix(x).strip('\n') for x in re.split(r'\n(?=## )', text)]
    nb = json.loads((NBS/'index.ipynb').read_text())
    code, after, last = {}, None, None
    for c in nb['cells']:
        if c['cell_type'] == 'markdown': last = ''.join(c['source']).split('\n', 1)[0]
        else: code.setdefault(last, []).append(c)
    cells = []
    for t in parts:
        head = t.split('\n', 1)[0]
        old = next((c for c in nb['cells'] if c['cell_type'] == 'markdown' and ''.join(c['source']).split('\n', 1)[0] == head), None)
        cells.append(dict(cell_type='markdown', id=old['id'] if old else hashlib.sha1(head.encode()).hexdigest()[:8], metadata={},
                          source=t.splitlines(True)))
        cells += code.get(head, [])
    nb['cells'] = cells
    return nb

def readme(out: Path):
    "README's and the course home's verdict table and figures from a reproduce run in `out` (from the store: trains nothing)."
    from bn_course.report import update_block
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run(['bn-course', 'reproduce', '--out', str(out)], cwd=ROOT, env=env, check=False)
    subprocess.run(['bn-course', 'report', '--out', str(out), '--readme', 'README.md'], cwd=ROOT, check=True)
    update_block((out/'readme_table.md').read_text().replace('](nbs/', ']('), NBS/'index.ipynb', 'verdicts')   # index lives in nbs/
    figs = readme_figures(out)
    update_block(figs, ROOT/'README.md', 'figures')
    update_block(figs.replace('](images/', '](../images/'), NBS/'index.ipynb', 'figures')
    (NBS/'index.ipynb').write_text(json.dumps(index_from_readme(), indent=1, ensure_ascii=False) + '\n')
    subprocess.run(['nbdev_clean', '--fname', str(NBS/'index.ipynb')], cwd=ROOT, check=True)

MAX_BYTES = 1_000_000     # GitHub's notebook viewer fails on notebooks of a few MB

def outputs(path: Path) -> list[tuple[int, dict]]:
    "Every output of a notebook's code cells, with the index of its cell."
    nb = json.loads(path.read_text())
    return [(i, o) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code' for o in c.get('outputs', [])]

def essay_problems(path: Path) -> list[str]:
    "A claim essay (a notebook whose `_lib` companion exports a claim module) opens with its verdict box and shows a figure by its fourth cell."
    outs = outputs(path)
    first = next((o for _, o in outs if o.get('data') or o.get('text')), {})
    text = ''.join(first.get('data', {}).get('text/markdown', ''))
    fig = next((i for i, o in outs if 'image/png' in o.get('data', {})), None)
    return ([] if '**Verdict:' in text else [f'{path.stem}: its first output is not the verdict box']) + \
           ([] if fig is not None and fig <= 4 else [f'{path.stem}: no figure by cell 4 (first at {fig})'])

def has_figure(path: Path) -> bool: return any('image/png' in o.get('data', {}) for _, o in outputs(path))

def image_hashes(path: Path) -> list[str]:
    return [hashlib.sha1(str(o['data']['image/png']).encode()).hexdigest() for _, o in outputs(path) if 'image/png' in o.get('data', {})]

def check() -> int:
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    bad, seen = [], {}
    for p in sorted(NBS.glob('*.ipynb')):
        n = p.stem
        if record.get(n) != code_hash(p): bad.append(f'{n}: code changed since its last render (or never rendered)')
        if n in MUST_HAVE_FIGURES and not has_figure(p): bad.append(f'{n}: no figure in its outputs')
        if p.stat().st_size > MAX_BYTES: bad.append(f'{n}: {p.stat().st_size/1e6:.2f} MB, over {MAX_BYTES/1e6:g} MB')
        lib = NBS/f'{n}_lib.ipynb'
        if lib.exists() and 'default_exp claims.' in lib.read_text(): bad += essay_problems(p)
        for h in image_hashes(p):
            if h in seen: bad.append(f'{n}: a figure already embedded in {seen[h]}')
            seen.setdefault(h, n)
    prose = lambda nb: [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown']
    if prose(index_from_readme()) != prose(json.loads((NBS/'index.ipynb').read_text())):
        bad.append('index: its prose is not README\'s: run `python .ci/render.py --readme-only`')
    for b in bad: print('render check:', b)
    if bad: print('run `python .ci/render.py` (after the test suite, so the run store is full) and commit the notebooks')
    else: print(f'every notebook rendered from its current code ({len(record)} notebooks), under {MAX_BYTES/1e6:g} MB, each figure once; '
                'claim notebooks carry figures; claim essays open with their verdict and a figure')
    return 1 if bad else 0

def main():
    a = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    a.add_argument('names', nargs='*', help='notebooks to render (default: all)')
    a.add_argument('--jobs', type=int, default=2)
    a.add_argument('--check', action='store_true')
    a.add_argument('--one', help=argparse.SUPPRESS)
    a.add_argument('--no-readme', action='store_true', help='skip reproduce, README table and figures')
    a.add_argument('--readme-only', action='store_true', help='only README\'s table and figures (PLAYGROUND_SHOTS: the browser test\'s screenshots)')
    args = a.parse_args()
    if args.check: sys.exit(check())
    if args.one: return execute_one(args.one)
    if args.readme_only: return readme(ROOT/'bn_course_out')
    names = args.names or sorted(p.stem for p in NBS.glob('*.ipynb'))
    t0 = time.perf_counter()
    res = run_notebooks(names, args.jobs)
    subprocess.run(['nbdev_clean'], cwd=ROOT, check=True)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    record.update({n: code for n, (ok, _, code) in res.items() if ok})
    RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1) + '\n')
    print('per notebook:', ', '.join(f'{n} {dt:.0f} s' for n, (ok, dt, _) in res.items()), f'| total {time.perf_counter() - t0:.0f} s')
    failed = [n for n, (ok, _, _) in res.items() if not ok]
    if failed: sys.exit(f'failed: {failed}')
    if not args.no_readme: readme(ROOT/'bn_course_out')

if __name__ == '__main__': main()
